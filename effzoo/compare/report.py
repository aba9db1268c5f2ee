"""The outputs of ``effzoo compare``: the table (CSV, every figure with its 95% interval),
the report (markdown) and the plot (PNG, where matplotlib is installed).

Every comparison is made by the intervals (``stats``): A is more accurate than B where
the paired bootstrap of A's mAP minus B's lies above 0, faster where the interval of A's
latency over B's lies below 1. No path in the report or CSV is absolute: paths are
relative to ``--out``."""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from os.path import relpath
from pathlib import Path
from typing import Any

import numpy as np

from .. import _machine
from . import stats
from .candidates import Candidate

#: a candidate "learned" where its mAP50-95 interval's lower end is above this
LEARNED = 0.001
#: CPUs other processes may use on average while timing before the report warns
BUSY_CPUS = 0.25


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return _machine.machine(("ultralytics", "timm", "onnxruntime", "openvino", "nncf", "tensorrt"))


@dataclass
class Evidence:
    """What the comparisons read: per candidate its mAP bootstrap draws (paired over the
    same images), per column each candidate's per-round latencies."""

    draws: dict[str, np.ndarray] = field(default_factory=dict)
    rounds: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    process: dict[str, list[int]] = field(default_factory=dict)

    def more_accurate(self, rows: dict[str, dict[str, Any]], a: str, b: str) -> bool:
        """A's mAP50-95 above B's by the intervals (paired where the draws exist)."""
        if a in self.draws and b in self.draws:
            return stats.paired_difference(self.draws[a], self.draws[b])[0] > 0
        lo, hi = rows[a].get("mAP50-95 lo"), rows[b].get("mAP50-95 hi")
        return lo is not None and hi is not None and lo > hi

    def ratio(self, col: str, a: str, b: str) -> tuple[float, float, float]:
        return stats.ratio_interval(self.rounds[col][a], self.rounds[col][b], self.process.get(col))

    def dominates(self, rows: dict[str, dict[str, Any]], col: str, a: str, b: str) -> bool:
        """A better than B on one axis by its interval and not worse on the other."""
        _, lo, hi = self.ratio(col, a, b)
        if self.more_accurate(rows, a, b) and lo <= 1:
            return True
        return hi < 1 and not self.more_accurate(rows, b, a)


def table_rows(
    cands: Sequence[Candidate],
    runs: dict[str, list[dict[str, Any]]],
    exports: dict[str, dict[str, dict[str, Any]]],
    times: dict[str, dict[str, Any]],
    settings: dict[str, Any],
    root: Path,
) -> tuple[list[dict[str, Any]], Evidence]:
    """One row per candidate (the CSV's columns, in order), and the evidence behind them."""
    ref = settings["reference"]
    matches: dict[str, list[stats.Matches]] = {}
    for c in cands:
        found = [Path(r["run_dir"]) / r["matches"] for r in runs[c.name] if r.get("matches")]
        if all(p.is_file() for p in found) and len(found) == len(runs[c.name]):
            matches[c.name] = [stats.Matches.load(p) for p in found]
    maps = {c.name: [r["map50_95"] for r in runs[c.name]] for c in cands}
    intervals, draws = stats.map_intervals(maps, matches if len(matches) == len(cands) else None)
    evidence = Evidence(
        draws,
        {col: t["rounds_ms"] for col, t in times.items()},
        {col: t["process"] for col, t in times.items() if t.get("process")},
    )
    rows = []
    for c in cands:
        rs, m, ci = runs[c.name], maps[c.name], intervals[c.name]
        first = rs[0]
        row: dict[str, Any] = {
            "name": c.name,
            "model": c.text,
            "kind": c.kind,
            "start": c.start,
            "params_M": round(first["params"] / 1e6, 3),
            "GFLOPs": first["gflops"],
            "mAP50-95": round(statistics.mean(m), 4),
            "mAP50-95 lo": None if ci is None else round(max(0.0, ci[0]), 4),
            "mAP50-95 hi": None if ci is None else round(ci[1], 4),
            "mAP50": round(statistics.mean(r["map50"] for r in rs), 4),
            "epochs": settings["epochs"],
            "seeds": len(m),
            "seed_spread": round(max(m) - min(m), 4) if len(m) > 1 else None,
            "resumed": sum(bool(r.get("resumed")) for r in rs),
        }
        for col, t in times.items():
            for key, (v, lo, hi) in (
                (f"{col} ms", stats.ms_interval(t["rounds_ms"][c.name], t.get("process"))),
                (f"{col} x", evidence.ratio(col, c.name, ref)),
            ):
                row.update({key: round(v, 3), f"{key} lo": round(lo, 3), f"{key} hi": round(hi, 3)})
            made = exports[c.name][col]
            if made.get("runtime") == "openvino-int8" and "map50_95" in made:
                at = "" if col == "openvino-int8" else f" ({col})"
                row[f"int8 mAP50-95{at}"] = round(made["map50_95"], 4)
                if made.get("imgsz", settings["imgsz"]) == settings["imgsz"]:
                    change = made["map50_95"] - first["map50_95"]
                    row[f"int8 change (seed 0){at}"] = round(change, 4)
        row["run_dir"] = relpath(first["run_dir"], root)
        rows.append(row)
    return rows, evidence


def learned(rows: Sequence[dict[str, Any]]) -> bool:
    """Whether any candidate's mAP50-95 is distinguishable from 0."""
    return any((r["mAP50-95 lo"] if r["mAP50-95 lo"] is not None else r["mAP50-95"]) > LEARNED
               for r in rows)  # fmt: skip


def pareto(rows: Sequence[dict[str, Any]], col: str, ev: Evidence) -> list[str]:
    """The candidates no other dominates in ``col`` (by the intervals), fastest first."""
    by = {r["name"]: r for r in rows}
    front = [a for a in by if not any(ev.dominates(by, col, b, a) for b in by if b != a)]
    return sorted(front, key=lambda n: by[n][f"{col} x"])


def recommend(rows: Sequence[dict[str, Any]], settings: dict[str, Any], ev: Evidence) -> str:
    """The fastest candidate (first column) that no other is more accurate than, by the
    intervals; with its evidence. Nothing where no candidate learned."""
    if not learned(rows):
        return "None: no candidate learned (see the top of the report)."
    col, ref = settings["columns"][0], settings["reference"]
    by = {r["name"]: r for r in rows}
    top = [n for n in by if not any(ev.more_accurate(by, m, n) for m in by if m != n)]
    pick = min(top, key=lambda n: by[n][f"{col} x"])
    r = by[pick]
    text = (
        f"**{pick}** ({r['start']}): mAP50-95 {_ci(r, 'mAP50-95')} at "
        f"{_ci(r, f'{col} x', 2)}x {ref}'s {col} latency ({_ci(r, f'{col} ms', 2)} ms), "
        f"{r['params_M']:.2f} M parameters, {r['GFLOPs']:.2f} GFLOPs."
    )
    beaten = [n for n in by if n != pick and ev.more_accurate(by, pick, n)]
    if beaten:
        text += f" More accurate than {', '.join(beaten)} by the 95% intervals."
    others = [n for n in top if n != pick]
    paired = "paired over the same validation images and seeds"
    how = paired if ev.draws else "by non-overlapping intervals"
    text += f" No candidate is more accurate by the 95% intervals ({how})"
    if others:
        verb = "is" if len(others) == 1 else "are"
        text += f"; {', '.join(others)} {verb} as accurate by them and slower in {col}"
    text += "."
    if all(x["mAP50-95 lo"] is None for x in rows):
        text += (
            " One seed and no per-image matches: the accuracy has no interval, so any "
            "difference may be noise; rerun with --seeds 3."
        )
    return text


def dominance(rows: Sequence[dict[str, Any]], settings: dict[str, Any], ev: Evidence) -> list[str]:
    """For each stock candidate and column: the effzoo rows that dominate it by the
    intervals (more accurate and not slower, or faster and not less accurate)."""
    by = {r["name"]: r for r in rows}
    lines: list[str] = []
    if not learned(rows):
        return ["- none: no candidate learned, so no candidate is more accurate than another"]
    for s in (r["name"] for r in rows if r["kind"] == "stock"):
        for col in settings["columns"]:
            found = [n for n in by if by[n]["kind"] != "stock" and ev.dominates(by, col, n, s)]
            verdict = (
                f"dominated by {', '.join(found)}" if found else "no effzoo candidate dominates it"
            )
            lines.append(f"- {s} in {col}: {verdict}")
    return lines


def _ci(row: dict[str, Any], key: str, digits: int = 3) -> str:
    lo, hi = row.get(f"{key} lo"), row.get(f"{key} hi")
    text = f"{row[key]:.{digits}f}"
    return text if lo is None or hi is None else f"{text} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _md_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[str]:
    head = ["name", "start", "params_M", "GFLOPs", "mAP50-95 [95% CI]", "mAP50", "seeds"]
    head += ["resumed"] if any(r["resumed"] for r in rows) else []
    for col in columns:
        head += [f"{col} ms [95% CI]", f"{col} x [95% CI]"]
    int8 = sorted({k for r in rows for k in r if "int8" in k}, key=list(rows[0]).index)
    head += int8

    def cells(r: dict[str, Any]) -> list[str]:
        out = [r["name"], r["start"], f"{r['params_M']:g}", f"{r['GFLOPs']:g}"]
        out += [_ci(r, "mAP50-95"), f"{r['mAP50']:.3f}", str(r["seeds"])]
        out += [str(r["resumed"])] if "resumed" in head else []
        for col in columns:
            out += [_ci(r, f"{col} ms", 2), _ci(r, f"{col} x", 2)]
        return out + ["" if r.get(k) is None else f"{r[k]:g}" for k in int8]

    return [
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
        *("| " + " | ".join(cells(r)) + " |" for r in rows),
    ]


def resumed_runs(runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The runs that were resumed after an interruption, each with the epochs it resumed
    after and its epochs as run (results.csv: a repeated epoch listed twice), then ""."""
    lines = [
        f"- {name} seed {r['seed']}: resumed after epoch "
        f"{', '.join(map(str, r.get('resumed_after') or [])) or '?'}; epochs as run "
        f"{','.join(map(str, r.get('epochs_run') or []))}"
        for name, rs in runs.items()
        for r in rs
        if r.get("resumed")
    ]
    if not lines:
        return []
    head = (
        "Resumed runs (Ultralytics' resume is not exact: a resumed run's numbers differ "
        "from an uninterrupted run's):"
    )
    return [head, "", *lines, ""]


def precisions(times: dict[str, dict[str, Any]]) -> list[str]:
    """A line per runtime that chose its own precision (OpenVINO): what its column measured."""
    lines = []
    for col, record in times.items():
        seen = sorted({p for p in (record.get("precision") or {}).values()} - {None})
        if seen:
            rest = "NNCF's quantized layers in int8, the others in " if "int8" in col else ""
            lines.append(
                f"- Precision, {col}: {rest}{' / '.join(seen)}: OpenVINO's default on this "
                "machine for a model compiled for the CPU with the latency hint, as "
                "Ultralytics compiles it too (bf16 where the CPU has AVX512_BF16 or AMX, f32 "
                "otherwise)"
            )
    return lines


def warnings_first(
    rows: Sequence[dict[str, Any]], times: dict[str, dict[str, Any]], settings: dict[str, Any]
) -> list[str]:
    """What the reader must know before the table: nothing learned, a busy machine, ratios
    that did not reach the target precision, the stock rows' start."""
    out = []
    if not learned(rows):
        out.append(
            f"**No candidate learned**: every mAP50-95 is indistinguishable from 0 after "
            f"{settings['epochs']} epochs, so this comparison recommends nothing. Raise "
            f"--epochs (Ultralytics' default is 100), the image size (--imgsz, now "
            f"{settings['imgsz']}), or the data (more labelled images per class), then rerun: "
            "the finished runs are kept only where their arguments are unchanged."
        )
    busy = {c: t for c, t in times.items() if t.get("other_cpus", 0) > BUSY_CPUS}
    if busy:
        worst = max(t["other_cpus"] for t in busy.values())
        out.append(
            f"**The machine was busy while timing** ({', '.join(busy)}): other processes used "
            f"{worst:.2f} CPUs on average (load average {_loads(busy)}), so the latencies "
            "include their interference. Rerun on a quiet machine: the trained runs are "
            "kept; delete the timing/ folder to time again."
        )
    wide = [c for c, t in times.items() if not t.get("complete", True)]
    if wide:
        out.append(
            f"Timing in {', '.join(wide)} did not reach ±5% on every ratio within the time "
            "budget (--timing-budget); their intervals say how precise they are."
        )
    if settings.get("stock_note"):  # the stock rows start from scratch (candidates')
        out.append(settings["stock_note"])
    return out


def _loads(times: dict[str, dict[str, Any]]) -> str:
    vals = [v for t in times.values() for v in (t.get("load") or {}).values()]
    return f"{min(vals):.1f}-{max(vals):.1f}" if vals else "unknown"


def figure(rows: Sequence[dict[str, Any]], settings: dict[str, Any], ev: Evidence) -> Any:
    """A panel per column: mAP50-95 against latency / the reference, both with their 95%
    intervals; stock rows as grey squares, effzoo rows as blue circles (legend); the
    front by the intervals dashed; labels placed where they overlap nothing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols, ref = settings["columns"], settings["reference"]
    fig, axes = plt.subplots(1, len(cols), figsize=(6 * len(cols), 4.8), squeeze=False)
    top = max([r["mAP50-95 hi"] or r["mAP50-95"] for r in rows] + [0.05])
    for ax, col in zip(axes[0], cols):
        placed: list[Any] = []
        for stock, label, style in (
            (True, "stock Ultralytics", dict(fmt="s", color="0.45")),
            (False, "effzoo backbone", dict(fmt="o")),
        ):
            group = [r for r in rows if (r["kind"] == "stock") == stock]
            if group:
                x, xerr = _with_errors(group, f"{col} x")
                y, yerr = _with_errors(group, "mAP50-95")
                ax.errorbar(x, y, xerr=xerr, yerr=yerr, capsize=3, ms=6, lw=1, label=label, **style)
        front = [next(r for r in rows if r["name"] == n) for n in pareto(rows, col, ev)]
        ax.plot([r[f"{col} x"] for r in front], [r["mAP50-95"] for r in front], "k--", lw=0.8)
        ax.set_ylim(0, top * 1.15)
        ax.set_xlabel(f"{col} latency / {ref} (95% CI)")
        ax.set_ylabel("mAP50-95 (95% CI)")
        ax.set_title(col)
        ax.legend(loc="lower right", fontsize=8)
        fig.canvas.draw()
        for r in sorted(rows, key=lambda r: -r["mAP50-95"]):
            _label(fig, ax, r["name"], (r[f"{col} x"], r["mAP50-95"]), placed)
    fig.suptitle("effzoo compare: accuracy against latency; the front (dashed) by the intervals")
    fig.tight_layout()
    return fig


def _with_errors(group: Sequence[dict[str, Any]], key: str) -> tuple[Any, list[Any]]:
    """``key``'s values and their distances to the interval's ends (none without one)."""
    v = np.array([r[key] for r in group])
    lo = [r[f"{key} lo"] if r[f"{key} lo"] is not None else x for r, x in zip(group, v)]
    hi = [r[f"{key} hi"] if r[f"{key} hi"] is not None else x for r, x in zip(group, v)]
    return v, [v - lo, hi - v]


#: offsets (points) tried in turn for a point's label
_OFFSETS = [(6, 6), (6, -12), (-6, 6), (-6, -12), (6, 18), (6, -24), (-6, 18), (-6, -24),
            (12, 30), (12, -36), (-12, 30), (-12, -36)]  # fmt: skip


def _label(fig: Any, ax: Any, name: str, xy: tuple[float, float], placed: list[Any]) -> None:
    r = fig.canvas.get_renderer()
    for dx, dy in _OFFSETS:
        t = ax.annotate(
            name, xy, xytext=(dx, dy), textcoords="offset points", fontsize=7,
            ha="left" if dx > 0 else "right",
        )  # fmt: skip
        box = t.get_window_extent(r)
        if not any(box.overlaps(p.get_window_extent(r)) for p in placed):
            placed.append(t)
            return
        t.remove()
    t = ax.annotate(name, xy, xytext=(6, 6), textcoords="offset points", fontsize=6)
    placed.append(t)


def plot(
    rows: Sequence[dict[str, Any]], settings: dict[str, Any], ev: Evidence, path: Path
) -> Path | None:
    """The figure written to ``path``; None without matplotlib."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return None
    import matplotlib.pyplot as plt

    fig = figure(rows, settings, ev)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_outputs(
    root: Path,
    cands: Sequence[Candidate],
    runs: dict[str, list[dict[str, Any]]],
    exports: dict[str, dict[str, dict[str, Any]]],
    times: dict[str, dict[str, Any]],
    settings: dict[str, Any],
) -> dict[str, Any]:
    from .._atomic import write_text

    settings = {**settings, "columns": list(times)}
    rows, ev = table_rows(cands, runs, exports, times, settings, root)
    csv_path = root / "compare.csv"
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(csv_path, buf.getvalue())
    ref = settings["reference"]
    png = plot(rows, settings, ev, root / "compare.png")
    rec = recommend(rows, settings, ev)
    data = "the demo data (generated)" if settings["demo_data"] else relpath(settings["data"], root)
    t = settings["timing"]
    sizes = ", ".join(str(s) for s in settings["deploy_imgsz"])
    first = warnings_first(rows, times, settings)
    lines = [
        "# effzoo compare",
        "",
        *(line for w in first for line in (w, "")),
        f"{len(rows)} candidates trained on {data}: {settings['epochs']} epochs at "
        f"{settings['imgsz']} px, batch {settings['batch']}, {settings['seeds']} seed(s) each "
        f"(seeds 0-{settings['seeds'] - 1}); timed at {sizes} px; latency as a ratio to "
        f"{ref}. Brackets: 95% intervals.",
        "",
        *_md_table(rows, settings["columns"]),
        "",
        *resumed_runs(runs),
        "## Recommendation",
        "",
        rec,
        "",
        "## Pareto front (mAP50-95 against latency, by the intervals)",
        "",
        *(
            f"- {c}: {' < '.join(pareto(rows, c, ev))}"
            if learned(rows)
            else f"- {c}: none (no candidate learned)"
            for c in settings["columns"]
        ),
        "",
        "Stock models and whether an effzoo candidate dominates them (more accurate and not "
        "slower, or faster and not less accurate, each by its 95% interval):",
        "",
        *dominance(rows, settings, ev),
        "",
        f"Plot: {png.name}"
        if png
        else "Plot: none (matplotlib is not installed: "
        "pip install matplotlib, then rerun: nothing is trained again)",
        "",
        "## How it was measured",
        "",
        "- Training: Ultralytics' `train` with its defaults and the budget above "
        f"(`deterministic=True`; extra arguments: {settings['train_args'] or 'none'}); device "
        f"{settings['device']}; mAP50-95: `val` of `best.pt` on the validation split, the mean "
        "over seeds; its interval a bootstrap over validation images and seeds (the same "
        "images for every candidate, so two candidates are compared paired), or over seeds "
        "alone where the per-image matches are missing.",
        f"- Export: `model.export(format=...)` with Ultralytics' defaults at each deploy size "
        f"({sizes} px), from the first seed's `best.pt`; an INT8 artifact is validated the "
        "same way (`int8 change (seed 0)`: its mAP50-95 minus that of the `best.pt` it was "
        "made from, where exported at the training size).",
        "- Latency: each artifact in processes of its own, opened with its runtime's own API "
        "(an ONNX Runtime session, an OpenVINO model compiled with the latency hint; "
        "`best.pt` as Ultralytics' predictor runs it, through its AutoBackend) with the "
        "runtime's default threads: the raw forward, batch 1, no "
        "Ultralytics pre- or post-processing; the processes take turns in rounds in a "
        f"shuffled order, one at a time; {t['warmup']} warm-up calls at the start of each "
        f"turn, {t['per_round']} timed calls a turn; after {t['rounds']} rounds the processes "
        f"stop and fresh ones start, {t.get('processes', 1)} at least per artifact, more until "
        f"every ratio's interval is within ±5% (at most {t['budget_s']:g} s per runtime and "
        "size). x: per round, the candidate's median call over the reference's in the same "
        "round; per process, the median of those; then the geometric mean over processes. "
        "ms: likewise, each round's median call. Intervals: 95%, a t interval over the "
        "processes (one process differs from the next as much as rounds do), or a bootstrap "
        "over rounds where there was one process.",
        *(
            f"- Timing, {c}: {len(set(tm.get('process') or [0]))} processes per artifact, "
            f"{len(next(iter(tm['rounds_ms'].values())))} rounds in "
            f"{tm.get('seconds', 0):g} s; other processes used {tm.get('other_cpus', 0):.2f} "
            f"CPUs on average; load average {_loads({c: tm})}"
            for c, tm in times.items()
        ),
        *precisions(times),
        "- Runs (Ultralytics' directories): runs/ (relative to this report)",
        "",
        "## Machine",
        "",
        *(f"- {k}: {v}" for k, v in machine().items()),
        "",
    ]
    report = root / "compare.md"
    write_text(report, "\n".join(lines))
    return {"table": rows, "csv": csv_path, "report": report, "plot": png, "recommendation": rec}
