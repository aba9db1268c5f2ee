"""After training: each candidate's first-seed ``best.pt`` exported for every runtime at
every deploy size, then each runtime and size timed (``timing``): nothing else of
``effzoo compare`` runs meanwhile. Exports and timings are kept in records keyed by
what determines them, so a rerun measures only what changed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .._atomic import read_record, write_json
from .runtimes import Runtime
from .timing import METHOD, TARGET, time_artifacts
from .train import export, run_folder


def record_key(obj: Any) -> str:
    """The key of a run or timing record: a short hash of what determines it."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def export_all(
    job: dict[str, Any], rt: Runtime, size: int, device: str, say: Callable[[str], None]
) -> dict[str, Any]:
    """``job``'s ``best.pt`` exported for ``rt`` at ``size`` (kept in its own folder under
    the run, so sizes do not overwrite each other), with its record."""
    run_dir = run_folder(job)
    best = run_dir / "weights" / "best.pt"
    if not rt.format:
        return {"runtime": rt.name, "imgsz": size, "artifact": str(best)}
    path = run_dir / f"effzoo-export-{rt.name}-{size}.json"
    made = read_record(path, say)
    if made is None or not (run_dir / made.get("artifact", "\0")).exists():
        say(f"exporting {job['candidate']} to {rt.name} at {size} px")
        made = export(str(best), rt.name, {**job, "device": device, "imgsz": size})
        dest = run_dir / "exports" / f"{rt.name}-{size}"
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        moved = Path(shutil.move(made["artifact"], dest / Path(made["artifact"]).name))
        made.update(artifact=os.path.relpath(moved, run_dir), imgsz=size)
        write_json(path, made)
    return {**made, "artifact": str(run_dir / made["artifact"])}


def measure(
    cands: Sequence[Any],
    first: dict[str, dict[str, Any]],
    runtimes: Sequence[Runtime],
    sizes: Sequence[int],
    ref: str,
    timing: dict[str, Any],
    root: Path,
    device: str,
    say: Callable[[str], None],
) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, dict[str, Any]], list[str]]:
    """(exports: candidate -> column -> record, times: column -> timing record, what was
    timed now), a column being ``runtime`` or ``runtime@size`` when several sizes."""
    one = str(device).split(",")[0]  # exported and timed on one device: the first
    exports: dict[str, dict[str, dict[str, Any]]] = {}
    times: dict[str, dict[str, Any]] = {}
    timed: list[str] = []
    order = [ref, *(c.name for c in cands if c.name != ref)]
    for rt in runtimes:
        for size in sizes:
            col = column(rt.name, size, sizes)
            for c in cands:
                exports.setdefault(c.name, {})[col] = export_all(first[c.name], rt, size, one, say)
            keys = [first[n]["key"] for n in order]
            key = record_key([rt.name, keys, size, one, timing, METHOD])
            path = root / "timing" / f"{rt.name}-{size}-{key}.json"
            record = read_record(path, say)
            if record is None or set(record.get("rounds_ms", {})) != set(order):
                say(f"timing {len(order)} artifacts in {rt.name} at {size} px, each in "
                    f"processes of its own, until every ratio is within ±{TARGET:.0%}")  # fmt: skip
                artifacts = [exports[n][col]["artifact"] for n in order]
                got = time_artifacts(
                    artifacts, runtime=rt.name, imgsz=size, device=one, log=say, **timing
                )
                record = asdict(got)
                by_name = dict(zip(artifacts, order))
                record["rounds_ms"] = {by_name[a]: v for a, v in got.rounds_ms.items()}
                record["precision"] = {by_name[a]: v for a, v in got.precision.items()}
                record.update(runtime=rt.name, imgsz=size, order=order)
                path.parent.mkdir(parents=True, exist_ok=True)
                write_json(path, record)
                timed.append(col)
            times[col] = record
    return exports, times, timed


def column(runtime: str, size: int, sizes: Sequence[int]) -> str:
    """The table's name for ``runtime`` at ``size``: the runtime alone where one size."""
    return runtime if len(sizes) == 1 else f"{runtime}@{size}"
