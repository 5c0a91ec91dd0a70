"""The HTTP backend: any OpenAI-compatible server, through the standard library only.

`OpenAIRewriter` sends one request per prompt from a thread pool (`concurrency` in flight),
with a per-request timeout and bounded retries with exponential back-off (plus jitter) on
what is worth retrying: refused or dropped connections, timeouts, HTTP 408/429/5xx and
malformed replies. Other 4xx replies (bad model name, bad parameters) fail at once. Every
failure is a `KnowlabError` naming the URL and what was wrong.

`serve_rewriter` is the other direction: a small OpenAI-compatible server (on loopback by
default) around any Rewriter, gathering concurrent requests into batches. It lets tests and
benchmarks talk HTTP to a local model, and several processes share one loaded model.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import random
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from knowlab.augment.base import Rewriter, SamplingParams
from knowlab.errors import KnowlabError

APIS = ("completions", "chat")


class _Retry(Exception):
    """A failure worth another attempt; the message says what it was."""


def _endpoint(url: str, api: str | None) -> tuple[str, str]:
    """(full endpoint URL, api) from a base URL or a full endpoint."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path.rstrip("/")
    if path.endswith("/chat/completions"):
        found = "chat"
    elif path.endswith("/completions"):
        found = "completions"
    else:
        found = None
        path = path or "/v1"  # a bare host:port means the usual /v1 base
    if api is not None and api not in APIS:
        raise KnowlabError(f"{url}: api must be one of {', '.join(APIS)}, got {api!r}")
    if found and api and api != found:
        raise KnowlabError(f"{url}: the URL is a {found} endpoint but api={api}")
    api = found or api or "completions"
    if not found:
        path += "/chat/completions" if api == "chat" else "/completions"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", "")), api


class OpenAIRewriter(Rewriter):
    """`openai:URL#model=NAME`: POSTs to /v1/completions or /v1/chat/completions."""

    def __init__(self, url: str, params: SamplingParams | None = None, model: str | None = None,
                 api: str | None = None, concurrency: int = 4, timeout: float = 120.0, retries: int = 3,
                 backoff: float = 0.5, api_key_env: str | None = None):
        super().__init__(params)
        self.endpoint, self.api = _endpoint(url, api)
        if concurrency < 1 or retries < 0 or timeout <= 0 or backoff < 0:
            raise KnowlabError(f"{url}: need concurrency >= 1, retries >= 0, timeout > 0 and backoff >= 0")
        self.model = model
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.headers = {"Content-Type": "application/json"}
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise KnowlabError(f"{url}: api_key_env={api_key_env} but that environment variable is not set")
            self.headers["Authorization"] = f"Bearer {key}"
        host = urllib.parse.urlsplit(self.endpoint).hostname or ""
        # A loopback server is reached directly even when an HTTP proxy is set in the environment.
        loopback = host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}) if loopback else
                                                   urllib.request.ProxyHandler())
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="knowlab-http")
        self._abort = threading.Event()
        self.name = f"openai:{self.endpoint}"
        self.requests = 0  # attempts made, retries included
        self._count = threading.Lock()

    @property
    def identity(self) -> str:
        return f"{self.name}#model={self.model}"

    # ---- one request -----------------------------------------------------------------------

    def _send(self, url: str, body: dict | None) -> Any:
        """One attempt: the parsed JSON reply, `_Retry` for a transient failure, KnowlabError otherwise."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, headers=self.headers, method="GET" if body is None else "POST")
        with self._count:
            self.requests += 1
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", "replace").strip()
            if exc.code in (408, 429) or exc.code >= 500:
                raise _Retry(f"HTTP {exc.code} {detail}") from None
            raise KnowlabError(f"{url}: HTTP {exc.code} {exc.reason}: {detail or 'no details'}") from None
        except urllib.error.URLError as exc:
            raise _Retry(f"cannot connect ({exc.reason})") from None
        except (TimeoutError, socket.timeout):
            raise _Retry(f"no reply within {self.timeout:g} s") from None
        except (OSError, http.client.HTTPException) as exc:  # reset, dropped or cut short mid-reply
            raise _Retry(f"connection failed ({exc})") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise _Retry(f"malformed response (not JSON): {raw[:120]!r}") from None

    def _with_retries(self, url: str, body: dict | None, parse) -> Any:
        last = ""
        for attempt in range(self.retries + 1):
            if self._abort.is_set():
                raise KnowlabError(f"{url}: cancelled after another request failed")
            if attempt:
                # exponential back-off with jitter, so parallel clients do not retry in lockstep
                time.sleep(self.backoff * 2 ** (attempt - 1) * (0.5 + random.random() / 2))
            try:
                return parse(self._send(url, body))
            except _Retry as exc:
                last = str(exc)
        raise KnowlabError(f"{url}: {last} (gave up after {self.retries + 1} attempts)")

    def _text_of(self, reply: Any) -> str:
        try:
            if isinstance(reply, dict) and "error" in reply and "choices" not in reply:
                raise _Retry(f"server error: {str(reply['error'])[:200]}")
            choice = reply["choices"][0]
            text = choice["message"]["content"] if self.api == "chat" else choice["text"]
        except (KeyError, IndexError, TypeError):
            raise _Retry(f"malformed response (no choices[0].{'message.content' if self.api == 'chat' else 'text'}): "
                         f"{json.dumps(reply)[:160]}") from None
        if not isinstance(text, str):
            raise _Retry(f"malformed response (the text is {type(text).__name__}, not a string)")
        return text

    def _model_name(self) -> str:
        """The `model` option, or the server's only model from /v1/models."""
        if self.model:
            return self.model
        url = self.endpoint.rsplit("/chat/completions", 1)[0].rsplit("/completions", 1)[0] + "/models"

        def names(reply):
            try:
                return [m["id"] for m in reply["data"]]
            except (KeyError, TypeError):
                raise _Retry(f"malformed response (no data[].id): {json.dumps(reply)[:160]}") from None

        try:
            found = self._with_retries(url, None, names)
        except KnowlabError as exc:
            raise KnowlabError(f"{exc}; could not ask the server for its model: name it with #model=NAME") from None
        if len(found) != 1:
            raise KnowlabError(f"{url}: the server has {len(found)} models ({', '.join(found[:5])}); "
                               "name one with #model=NAME in the rewriter spec")
        self.model = found[0]
        return self.model

    def _one(self, prompt: str, seed: int) -> str:
        p = self.params
        body: dict[str, Any] = {"model": self.model, "max_tokens": p.max_new_tokens, "temperature": p.temperature,
                                "top_p": p.top_p, "seed": seed}
        if p.stop:
            body["stop"] = p.stop[:4]  # the OpenAI API takes at most four
        if self.api == "chat":
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        return self._with_retries(self.endpoint, body, self._text_of)

    def _generate(self, prompts: list[str], seeds: list[int]) -> list[str]:
        self._model_name()
        self._abort.clear()
        futures = [self._pool.submit(self._one, p, s) for p, s in zip(prompts, seeds)]
        try:
            return [f.result() for f in futures]
        except BaseException:
            self._abort.set()  # the others stop at their next attempt instead of retrying on
            for f in futures:
                f.cancel()
            raise

    def close(self) -> None:
        self._abort.set()
        self._pool.shutdown(wait=True, cancel_futures=True)


# ---- a small server around any Rewriter ---------------------------------------------------------

class _Batcher:
    """Gathers requests arriving within `wait` seconds into one `rewrite` call (up to `max_batch`)."""

    def __init__(self, rewriter: Rewriter, max_batch: int, wait: float):
        self.rewriter, self.max_batch, self.wait = rewriter, max_batch, wait
        self.jobs: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="knowlab-batcher", daemon=True)
        self.thread.start()

    def submit(self, prompt: str, seed: int, params: SamplingParams) -> Future:
        fut: Future = Future()
        self.jobs.put((prompt, seed, params, fut))
        return fut

    def _run(self) -> None:
        while True:
            first = self.jobs.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.wait
            while len(batch) < self.max_batch:
                try:
                    item = self.jobs.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    self.jobs.put(None)
                    break
                batch.append(item)
            # requests with different sampling params cannot share one rewrite call
            groups: dict[str, list] = {}
            for item in batch:
                groups.setdefault(json.dumps(item[2].key(), sort_keys=True), []).append(item)
            own = self.rewriter.params
            for items in groups.values():
                self.rewriter.params = items[0][2]  # the request's sampling, for this call only
                try:
                    outs = self.rewriter.rewrite([i[0] for i in items], [i[1] for i in items])
                    for item, out in zip(items, outs):
                        item[3].set_result(out)
                except Exception as exc:  # reported to each waiting request as HTTP 500
                    for item in items:
                        item[3].set_exception(exc)
                finally:
                    self.rewriter.params = own

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join(timeout=5)


class RewriterServer:
    """A running server; `url` is its API base (`http://127.0.0.1:PORT/v1`)."""

    def __init__(self, httpd: ThreadingHTTPServer, batcher: _Batcher):
        self.httpd, self.batcher = httpd, batcher
        host, port = httpd.server_address[:2]
        self.url = f"http://{host}:{port}/v1"
        self.thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       name="knowlab-server", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.batcher.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def serve_rewriter(rewriter: Rewriter, host: str = "127.0.0.1", port: int = 0, model_name: str = "knowlab",
                   max_batch: int = 8, wait: float = 0.01) -> RewriterServer:
    """Serve `rewriter` at /v1/completions, /v1/chat/completions and /v1/models (port 0: any free one)."""
    batcher = _Batcher(rewriter, max_batch, wait)
    defaults = rewriter.params

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet: a benchmark sends thousands of requests
            pass

        def _reply(self, code: int, obj: dict) -> None:
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                self._reply(200, {"object": "list", "data": [{"id": model_name, "object": "model"}]})
            elif self.path == "/health":
                self._reply(200, {"status": "ok"})
            else:
                self._reply(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                chat = self.path.rstrip("/").endswith("/chat/completions")
                if chat:
                    prompt = "\n".join(str(m.get("content", "")) for m in body["messages"])
                elif self.path.rstrip("/").endswith("/completions"):
                    prompt = body["prompt"]
                else:
                    return self._reply(404, {"error": {"message": f"no route {self.path}"}})
                params = SamplingParams(
                    temperature=float(body.get("temperature", defaults.temperature)),
                    top_p=float(body.get("top_p", defaults.top_p)),
                    max_new_tokens=int(body.get("max_tokens", defaults.max_new_tokens)),
                    stop=[body["stop"]] if isinstance(body.get("stop"), str) else list(body.get("stop") or []),
                )
                params.validate()
                seed = int(body.get("seed", defaults.seed))
            except (ValueError, KeyError, TypeError, KnowlabError) as exc:
                return self._reply(400, {"error": {"message": f"bad request: {exc}"}})
            try:
                text = batcher.submit(prompt, seed, params).result()
            except Exception as exc:
                return self._reply(500, {"error": {"message": str(exc)}})
            choice = {"index": 0, "finish_reason": "stop"}
            choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
            self._reply(200, {"id": "knowlab", "object": "chat.completion" if chat else "text_completion",
                              "model": model_name, "created": int(time.time()), "choices": [choice]})

    httpd = ThreadingHTTPServer((host, port), Handler)
    httpd.daemon_threads = True
    return RewriterServer(httpd, batcher)
