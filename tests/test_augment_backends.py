"""Real text through both model backends: a tiny local HF model (built from a config here,
nothing downloaded) and OpenAI-compatible HTTP servers on 127.0.0.1: knowlab's own server
wrapping the same model, scripted servers for retries and bad replies, and (slow) `transformers
serve`. The slow tests also train a tiny model to write the bios of 5 people, so bioR runs end
to end through a real model and its rejection sampling passes."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from knowlab.augment.bior import BiorConfig, _population, bior_prompt, generate_bior
from knowlab.augment.http import OpenAIRewriter, serve_rewriter
from knowlab.augment.local import HFRewriter, tiny_lm
from knowlab.augment.rewriter import SamplingParams, load_rewriter
from knowlab.cli import main
from knowlab.config import from_dict
from knowlab.data.config import DataConfig
from knowlab.data.dataset import Dataset
from knowlab.data.schema import ATTRIBUTES
from knowlab.errors import KnowlabError

PROMPTS = ["Anya Briar Forger was born on", "Write a 50 words biography about Bo Li.", "She works at"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def random_lm(tmp_path_factory):
    """An untrained 2-layer GPT-2 with a BPE trained on a few bios: it writes real, random text."""
    texts = ["Anya Briar Forger was born on October 2, 1996. She grew up in Princeton, NJ.",
             "Bo Li works at Meta Platforms in Menlo Park, CA. He studied Physics at Yale University."] * 4
    return tiny_lm(tmp_path_factory.mktemp("models") / "random", texts, vocab_size=400)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _JoinedServer(ThreadingHTTPServer):
    """close() waits for every handler, so a reply still sleeping when its client gave up cannot
    print into a later test's captured stderr; that client hanging up is what a timeout test wants."""

    daemon_threads = False

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Scripted:
    """An HTTP server on 127.0.0.1 answering POSTs from a script of (status, body) replies."""

    def __init__(self, script, delay=0.0):
        self.script, self.delay, self.requests = list(script), delay, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                outer.requests.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                time.sleep(outer.delay)
                status, body = outer.script.pop(0) if len(outer.script) > 1 else outer.script[0]
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = _JoinedServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


OK = {"choices": [{"text": " a reply", "index": 0}]}


def test_hf_backend_generates_seeded_text_independent_of_batching(random_lm):
    params = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=12)
    with HFRewriter(random_lm, params, batch_size=2) as rw:
        together = rw.rewrite(PROMPTS, [1, 2, 3])
        assert all(isinstance(t, str) and t.strip() for t in together)
        assert rw.rewrite(PROMPTS[2:], [3]) == together[2:]  # the same sample alone as in a batch
        assert rw.rewrite(PROMPTS[:1], [9]) != together[:1]
        assert rw.identity.startswith(f"hf:{random_lm}@")
    greedy = load_rewriter(f"hf:{random_lm}#batch_size=3,device=cpu", SamplingParams(temperature=0, max_new_tokens=8))
    assert greedy.rewrite(PROMPTS, [1, 2, 3]) == greedy.rewrite(PROMPTS, [4, 5, 6])
    with pytest.raises(KnowlabError, match="no chat template"):
        load_rewriter(f"hf:{random_lm}#chat=1")


def test_http_backend_against_a_loopback_server_wrapping_the_model(random_lm):
    params = SamplingParams(temperature=1.0, max_new_tokens=10)
    local = HFRewriter(random_lm, params, batch_size=4)
    expected = local.rewrite(PROMPTS, [11, 12, 13])
    with serve_rewriter(local, max_batch=4) as server:
        with load_rewriter(f"openai:{server.url}#concurrency=3", params) as rw:  # model from /v1/models
            assert rw.rewrite(PROMPTS, [11, 12, 13]) == expected  # real requests, same samples
            assert rw.model == "knowlab"
        with load_rewriter(f"{server.url}/chat/completions#model=knowlab", params) as chat:
            assert chat.api == "chat" and chat.rewrite(PROMPTS[:1], [11]) == expected[:1]
        with urllib.request.urlopen(server.url.replace("/v1", "/health"), timeout=5) as resp:
            assert json.load(resp) == {"status": "ok"}


def test_retries_with_backoff_then_success():
    server = Scripted([(500, "busy"), (503, "still busy"), (200, OK)])
    try:
        rw = OpenAIRewriter(server.url, model="m", retries=3, backoff=0.05)
        t0 = time.monotonic()
        assert rw.rewrite(["hi"], [4]) == [" a reply"]
        assert time.monotonic() - t0 >= 0.5 * (0.05 + 0.1)  # two back-offs, doubling, jitter >= half
        assert len(server.requests) == 3 and rw.requests == 3
        body = server.requests[-1]
        assert body["prompt"] == "hi" and body["seed"] == 4 and body["model"] == "m" and body["max_tokens"] == 256
    finally:
        server.close()


def test_unreachable_endpoint_is_a_clear_error_after_bounded_retries():
    url = f"http://127.0.0.1:{free_port()}/v1"
    rw = OpenAIRewriter(url, model="m", retries=2, backoff=0.01, timeout=2)
    t0 = time.monotonic()
    with pytest.raises(KnowlabError) as err:
        rw.rewrite(["hi", "there"])
    assert time.monotonic() - t0 < 10
    msg = str(err.value)
    assert url + "/completions" in msg and "cannot connect" in msg and "gave up after 3 attempts" in msg
    rw.close()


@pytest.mark.parametrize("reply, message", [
    ((200, "<html>proxy error</html>"), "malformed response (not JSON)"),
    ((200, {"object": "text_completion"}), "malformed response (no choices[0].text)"),
    ((200, {"error": {"message": "out of memory"}}), "server error"),
    ((200, {"choices": [{"text": None}]}), "not a string"),
])
def test_malformed_replies_are_clear_errors(reply, message):
    server = Scripted([reply])
    try:
        with pytest.raises(KnowlabError, match="gave up after 2 attempts") as err:
            OpenAIRewriter(server.url, model="m", retries=1, backoff=0.01).rewrite(["hi"])
        assert server.url in str(err.value) and message in str(err.value)
        assert len(server.requests) == 2
    finally:
        server.close()


def test_client_errors_fail_at_once_and_timeouts_retry():
    server = Scripted([(404, '{"error": "model m not found"}')])
    try:
        with pytest.raises(KnowlabError, match=r"HTTP 404 .*model m not found"):
            OpenAIRewriter(server.url, model="m", retries=3, backoff=0.01).rewrite(["hi"])
        assert len(server.requests) == 1
    finally:
        server.close()
    slow = Scripted([(200, OK)], delay=1.0)
    try:
        with pytest.raises(KnowlabError, match=r"no reply within 0.2 s \(gave up after 2 attempts\)"):
            OpenAIRewriter(slow.url, model="m", retries=1, backoff=0.01, timeout=0.2).rewrite(["hi"])
    finally:
        slow.close()


def test_bior_with_an_untrained_model_reports_every_failure(tmp_path, random_lm):
    cfg = from_dict(DataConfig, {"people": 3, "seed": 0, "vocab_size": 400})
    opts = BiorConfig(max_attempts=2, max_new_tokens=16)
    with pytest.raises(KnowlabError, match=r"3 bio\(s\) of 3 people failed the fact check after 2 attempts"):
        generate_bior(cfg, f"hf:{random_lm}", tmp_path / "r", options=opts)
    failed = [json.loads(x) for x in (tmp_path / "r.work" / "failed.jsonl").read_text().splitlines()]
    assert len(failed) == 3 and all(f["missing"] and isinstance(f["last_output"], str) for f in failed)
    assert not (tmp_path / "r").exists() and (tmp_path / "r.work" / "rewrites.jsonl").read_text() == ""


def test_augment_cli_through_http(tmp_path, random_lm, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": 1, "text": "Bo Li works at Meta Platforms.", "facts": ["Meta Platforms"]}) + "\n")
    local = HFRewriter(random_lm, SamplingParams(max_new_tokens=8))
    with serve_rewriter(local) as server:
        rc = main(["augment", str(src), "--rewriter", f"openai:{server.url}#model=knowlab", "--style", "paraphrase",
                   "--copies", "2", "--max-attempts", "2", "--max-new-tokens", "8", "--out", str(tmp_path / "o.jsonl")])
    out = capsys.readouterr().out
    failed = tmp_path / "o.failed.jsonl"
    # an untrained model almost surely loses the fact; whatever it wrote is either checked or reported
    written = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    reported = [json.loads(x) for x in failed.read_text().splitlines()] if failed.exists() else []
    assert len(written) + len(reported) == 2 and rc == (1 if reported else 0)
    assert all("Meta Platforms" in r["text"] for r in written)
    assert f"{len(written)} written" in out and f"{len(reported)} failed" in out


# ---- slow: a tiny model trained to write the bios, through both backends -------------------------

@pytest.fixture(scope="module")
def bior_lm(tmp_path_factory):
    """A 1-layer model fitted (completion only) on the bioR prompts of 5 people -> their bios."""
    cfg = from_dict(DataConfig, {"people": 5, "seed": 0, "vocab_size": 600})
    pairs = []
    for p in _population(cfg):
        pr = "He" if p.gender == "male" else "She"
        bio = (f" {p.name} was born on {p.birth_date} in {p.birth_city}. {pr} studied {p.major} at "
               f"{p.university}. {pr} works for {p.company} in {p.company_city}.")
        pairs.append((bior_prompt(p, 0, cfg.seed), bio))
    path = tiny_lm(tmp_path_factory.mktemp("models") / "bior", pairs, vocab_size=1000, n_layer=1, n_embd=96,
                   steps=250, lr=1e-2, until_exact=True)
    return cfg, path


def check_bior_folder(out, cfg):
    ds = Dataset(out)
    assert ds.manifest["family"] == "bioR" and ds.manifest["counts"]["bios"] == cfg.people
    people = {p["id"]: p for p in ds.people.to_pylist()}
    for row in ds.bios.to_pylist():
        for attr in ATTRIBUTES:
            assert row["text"][row[f"{attr}_start"]:row[f"{attr}_end"]] == people[row["person_id"]][attr]


@pytest.mark.slow
def test_bior_end_to_end_through_a_trained_local_model(tmp_path, bior_lm):
    cfg, path = bior_lm
    opts = BiorConfig(temperature=0.3, max_new_tokens=80, max_attempts=8)
    manifest = generate_bior(cfg, f"hf:{path}#batch_size=5", tmp_path / "r", options=opts)
    check_bior_folder(tmp_path / "r", cfg)
    assert manifest["bior"]["rewriter"].startswith(f"hf:{path}@")


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process handling")
def test_bior_end_to_end_through_transformers_serve(tmp_path, bior_lm):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    pytest.importorskip("openai")
    cfg, path = bior_lm
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    exe = os.path.join(os.path.dirname(sys.executable), "transformers")
    proc = subprocess.Popen([exe, "serve", str(path), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"transformers serve did not start: {proc.stderr.read().decode()[-2000:]}")
                time.sleep(0.5)
        spec = f"openai:http://127.0.0.1:{port}/v1#concurrency=2,timeout=60"  # the model name from /v1/models
        opts = BiorConfig(temperature=0.0, max_new_tokens=80, max_attempts=2)
        generate_bior(cfg, spec, tmp_path / "r", options=opts)
        check_bior_folder(tmp_path / "r", cfg)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _bior_wired() -> bool:
    from knowlab.cli import build_parser

    try:
        build_parser().parse_args(["data", "generate", "--family", "bioR", "--out", "x"])
        return True
    except SystemExit:
        return False


@pytest.mark.skipif(not _bior_wired(), reason="`knowlab data generate --family bioR` is not wired into cli.py yet")
def test_data_generate_family_bior_cli(tmp_path, random_lm, capsys):
    out = tmp_path / "r"
    argv = ["data", "generate", "--family", "bioR", "--rewriter", f"hf:{random_lm}", "--people", "2",
            "--vocab-size", "400", "--max-attempts", "1", "--max-new-tokens", "8", "--out", str(out)]
    assert main(argv) == 2  # an untrained model cannot write valid bios: a one-line error, no folder
    err = capsys.readouterr().err
    assert "2 bio(s) of 2 people failed the fact check" in err and "Traceback" not in err and not out.exists()
    assert main(["data", "generate", "--rewriter", f"hf:{random_lm}", "--people", "2", "--out", str(out)]) == 2
