"""`knowlab study export DIR --out OUT`: a study folder without its weights, small enough for git.

A study folder holds gigabytes of models, checkpoints and datasets, but its report needs only
the plan, the finish markers and each finished run's small JSON/JSONL files. The export keeps
exactly those, the logs and the report (nothing of an unfinished run, nor of a run the plan does
not name), so results survive the machine that made them: `knowlab study report OUT` rebuilds
the same report, and `knowlab study run ... --out OUT` continues the sweep, skipping every
finished run. A run whose outputs were cut is marked `"exported": true` in its finish marker;
when a new run needs it, the runner runs it again (same seed, same result).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from knowlab.errors import KnowlabError
from knowlab.io import atomic_dir, code_version, write_json_atomic

KEPT_SUFFIXES = {".json", ".jsonl", ".md", ".html", ".csv", ".png", ".svg", ".log", ".txt", ".yaml"}
# Folders whose contents a report never reads; a tokenizer's vocabulary alone is hundreds of KB.
CUT_FOLDERS = {"checkpoints", "tokenizer"}
CUT_NAMES = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt"}
MAX_FILE_BYTES = 2_000_000


def keep(rel: Path, size: int) -> bool:
    if rel.suffix not in KEPT_SUFFIXES or rel.name in CUT_NAMES or size > MAX_FILE_BYTES:
        return False
    return not any(part in CUT_FOLDERS for part in rel.parts[:-1])


def _run_of(rel: Path, outputs: list[str]) -> str | None:
    """The plan output (e.g. 'pretrain/x-s0-ab12') a file belongs to, if any: a file in it, or
    its log, lock or finish marker beside it."""
    text = rel.as_posix()
    for out in outputs:
        if text == out or text.startswith((out + "/", out + ".")):
            return out
    return None


def export_study(src: str | Path, out: str | Path) -> dict:
    """Copy what the report needs from study folder `src` to `out`; returns the summary written
    to OUT/EXPORT.json."""
    src, out = Path(src).resolve(), Path(out).resolve()
    if not (src / "study.json").is_file():
        raise KnowlabError(f"{src}: not a study folder (no study.json); export a folder made by 'knowlab study run'")
    if out.exists():
        raise KnowlabError(f"{out} already exists; export to a new folder")
    if src == out or src in out.parents:
        raise KnowlabError(f"{out} is inside the study folder {src}; export to a folder outside it")
    plan = json.loads((src / "study.json").read_text())
    outputs = sorted((r["output"][2:] for r in plan["runs"]), key=len, reverse=True)
    # Stage folders (pretrain/, eval/, ...) hold runs only: what belongs to no run of the plan
    # there (a run copied in from another folder, a leftover) is not this study's result.
    stages = {o.split("/")[0] for o in outputs}
    kept, cut, cut_bytes, trimmed = 0, 0, 0, set()
    with atomic_dir(out) as tmp:
        for path in sorted(p for p in src.rglob("*") if p.is_file()):
            rel = path.relative_to(src)
            if rel.suffix == ".lock":  # a running run's lock (study/runner.py): not a result
                continue
            size = path.stat().st_size
            run = _run_of(rel, outputs)
            # An unfinished run's files would only mislead a report or a resumed run: all cut.
            finished = run is None or (src / (run + ".done.json")).is_file()
            stray = run is None and len(rel.parts) > 1 and rel.parts[0] in stages
            if finished and not stray and keep(rel, size):
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, tmp / rel)
                kept += 1
            else:
                cut, cut_bytes = cut + 1, cut_bytes + size
                if run and finished:
                    trimmed.add(run)
        for run in trimmed:
            marker = tmp / (run + ".done.json")
            if marker.is_file():
                write_json_atomic(marker, {**json.loads(marker.read_text()), "exported": True})
        summary = {"source": str(src), "code_version": code_version(), "files_kept": kept,
                   "files_cut": cut, "bytes_cut": cut_bytes, "runs_trimmed": sorted(trimmed)}
        write_json_atomic(tmp / "EXPORT.json", summary)
    return summary
