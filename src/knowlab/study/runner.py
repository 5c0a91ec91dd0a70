"""Running a plan: each run is a `knowlab` subprocess, several at once where the machine allows.

Caching: a run is finished when `<output>.done.json` exists (written by the runner after the
process exits 0, holding the run's key and argv). A rerun skips finished runs; an interrupted
pretraining resumes from its last checkpoint (`--resume auto` is in its argv). A run whose
process fails stops the study with its log's last lines; finished runs stay cached. A finished
run whose outputs `knowlab study export` cut runs again only when an unfinished run needs it.
While a run's process lives it holds `<output>.lock`, and `kill` of the study stops its runs.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from knowlab.errors import KnowlabError
from knowlab.io import write_json_atomic
from knowlab.progress import LOG_EVERY_S
from knowlab.study.plan import Run


def done_marker(run: Run, root: Path) -> Path:
    path = run.path(root)
    return path.with_name(path.name + ".done.json")


def is_done(run: Run, root: Path) -> bool:
    marker = done_marker(run, root)
    return marker.is_file() and json.loads(marker.read_text()).get("key") == run.key


def has_outputs(run: Run, root: Path) -> bool:
    """Finished with its outputs in place: not cut by `knowlab study export`."""
    return is_done(run, root) and not json.loads(done_marker(run, root).read_text()).get("exported")


def to_run(runs: list[Run], root: Path) -> list[Run]:
    """The runs not finished, plus the exported ones (outputs cut) that an unfinished run needs."""
    pending = {r.key for r in runs if not is_done(r, root)}
    needed = [d for r in runs if r.key in pending for d in r.deps]
    while needed:
        dep = needed.pop()
        if dep.key not in pending and not has_outputs(dep, root):
            pending.add(dep.key)
            needed.extend(dep.deps)
    return [r for r in runs if r.key in pending]


def _claim(run: Run, root: Path):
    """An open, exclusively locked `<output>.lock`. The run's process gets the descriptor too, so
    the lock holds while that process lives, even if this study process dies without stopping
    it: a second study on the same folder cannot run the same run into the same files."""
    out = run.path(root)
    lock = open(out.with_name(out.name + ".lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise KnowlabError(f"{run.kind} run '{run.name}' is running in another process (it holds {lock.name}); "
                           "wait for it or stop it, then run this command again") from None
    return lock


def _stopped(signum, frame):
    raise KnowlabError(f"study stopped by signal {signum}; its runs were stopped, finished runs stay "
                       "cached and the same command resumes")


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
        "KNOWLAB_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        # glibc hands large tensor buffers back to the kernel after every step and faults them
        # in again on the next; keeping them in the heap removes that system time on CPUs.
        "MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "4294967296",
    })
    env.pop("KNOWLAB_PROGRESS", None)
    return env


def execute(
    runs: list[Run],
    root: Path,
    parallel: int = 1,
    threads: int = 0,
    on_done: Callable[[Run, float], None] | None = None,
    log: Callable[[str], None] = print,
    on_tick: Callable[[Run, float], None] | None = None,
    tick_every: float = LOG_EVERY_S,
) -> None:
    """Run everything not yet done, dependencies first, at most `parallel` processes at once.
    `on_tick(run, seconds)` is called for each running run every `tick_every` seconds."""
    threads = threads or max(1, (os.cpu_count() or 1) // parallel)
    pending = to_run(runs, root)
    skipped = len(runs) - len(pending)
    if skipped:
        log(f"{skipped} of {len(runs)} runs already finished (cached)")
    running: dict[str, tuple[Run, subprocess.Popen, float, object, object]] = {}
    done = {r.key for r in runs} - {r.key for r in pending}
    ticked: dict[str, float] = {}  # when on_tick last reported each running run
    # `kill PID` of the study must stop its runs too (the finally below), not leave them running.
    previous = signal.signal(signal.SIGTERM, _stopped)
    try:
        while pending or running:
            for key, (run, proc, start, fh, lock) in list(running.items()):
                code = proc.poll()
                if code is None:
                    if on_tick and time.time() - ticked.get(key, start) >= tick_every:
                        ticked[key] = time.time()
                        on_tick(run, ticked[key] - start)
                    continue
                fh.close()
                lock.close()
                del running[key]
                logfile = run.path(root).with_name(run.path(root).name + ".log")
                if code != 0:
                    tail = logfile.read_text(errors="replace").strip().splitlines()[-12:]
                    raise KnowlabError(
                        f"{run.kind} run '{run.name}' failed (exit {code}); log {logfile}:\n  " + "\n  ".join(tail)
                    )
                write_json_atomic(done_marker(run, root), {"key": run.key, "argv": run.argv,
                                                           "seconds": round(time.time() - start, 1)})
                done.add(key)
                if on_done:
                    on_done(run, time.time() - start)
            ready = [r for r in pending if all(d.key in done for d in r.deps)]
            while ready and len(running) < parallel:
                run = ready.pop(0)
                pending.remove(run)
                out = run.path(root)
                out.parent.mkdir(parents=True, exist_ok=True)
                lock = _claim(run, root)
                if is_done(run, root):  # exported: what is left of it is replaced by a fresh run
                    _remove(out)
                    done_marker(run, root).unlink()
                logfile = out.with_name(out.name + ".log")
                fh = open(logfile, "a")
                argv = [sys.executable, "-m", "knowlab.cli", *run.resolved_argv(root)]
                fh.write(f"$ {' '.join(argv)}\n")
                fh.flush()
                log(f"start {run.kind:9s} {run.name}")
                proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=_env(threads),
                                        pass_fds=(lock.fileno(),))
                running[run.key] = (run, proc, time.time(), fh, lock)
            if not ready and not running and pending:
                raise KnowlabError("study plan has runs whose dependencies can never finish")
            time.sleep(0.5)
    finally:
        signal.signal(signal.SIGTERM, previous)
        for run, proc, _, fh, lock in running.values():
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            fh.close()
            lock.close()
