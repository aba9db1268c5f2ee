"""The outputs of ``effzoo compare``: the table (CSV), the report (markdown: table, Pareto
front, recommendation with its evidence and noise, how it was measured, the machine)
and the Pareto plot (PNG, where matplotlib is installed)."""

from __future__ import annotations

import csv
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import _machine
from .candidates import Candidate


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return _machine.machine(("ultralytics", "timm", "onnxruntime", "openvino", "nncf", "tensorrt"))


def _median(rounds: list[list[float]]) -> float:
    return statistics.median(t for r in rounds for t in r)


def _ratio(cand: list[list[float]], ref: list[list[float]]) -> float:
    """Median over rounds of the candidate's per-round median over the reference's."""
    return statistics.median(statistics.median(c) / statistics.median(r) for c, r in zip(cand, ref))


def table_rows(
    cands: Sequence[Candidate],
    runs: dict[str, list[dict[str, Any]]],
    exports: dict[str, dict[str, dict[str, Any]]],
    times: dict[str, dict[str, Any]],
    settings: dict[str, Any],
) -> list[dict[str, Any]]:
    """One row per candidate: the CSV's columns, in order."""
    ref = settings["reference"]
    rows = []
    for c in cands:
        maps = [r["map50_95"] for r in runs[c.name]]
        first = runs[c.name][0]
        row: dict[str, Any] = {
            "name": c.name,
            "model": c.text,
            "kind": c.kind,
            "start": c.start,
            "params_M": round(first["params"] / 1e6, 3),
            "GFLOPs": first["gflops"],
            "mAP50-95": round(statistics.mean(maps), 4),
            "mAP50": round(statistics.mean(r["map50"] for r in runs[c.name]), 4),
            "epochs": settings["epochs"],
            "seeds": len(maps),
            "seed_spread": round(max(maps) - min(maps), 4) if len(maps) > 1 else None,
        }
        for rt in settings["runtimes"]:
            t = times[rt]
            if c.name == ref:
                ms = _median([r for pair in t.values() for r in pair["ref"]])
                ratio = 1.0
            else:
                ms, ratio = _median(t[c.name]["cand"]), _ratio(t[c.name]["cand"], t[c.name]["ref"])
            row[f"{rt} ms"], row[f"{rt} x"] = round(ms, 3), round(ratio, 3)
            if rt == "openvino-int8":
                int8 = exports[c.name][rt]["map50_95"]  # the first seed's model, quantized
                row["int8 mAP50-95"] = round(int8, 4)
                row["int8 change (seed 0)"] = round(int8 - first["map50_95"], 4)
        row["run_dir"] = first["run_dir"]
        rows.append(row)
    return rows


def pareto(rows: Sequence[dict[str, Any]], runtime: str) -> list[str]:
    """Names on the front of mAP50-95 (higher) against latency in ``runtime`` (lower)."""

    def dominated(a: dict[str, Any]) -> bool:
        return any(
            b["mAP50-95"] >= a["mAP50-95"]
            and b[f"{runtime} x"] <= a[f"{runtime} x"]
            and (b["mAP50-95"] > a["mAP50-95"] or b[f"{runtime} x"] < a[f"{runtime} x"])
            for b in rows
        )

    front = [r for r in rows if not dominated(r)]
    return [r["name"] for r in sorted(front, key=lambda r: r[f"{runtime} x"])]


def _noise(rows: Sequence[dict[str, Any]]) -> float | None:
    spreads = [r["seed_spread"] for r in rows if r["seed_spread"] is not None]
    return max(spreads) if spreads else None


def recommend(rows: Sequence[dict[str, Any]], settings: dict[str, Any]) -> str:
    """The fastest candidate (first runtime named) whose mAP is within the noise of the
    best; with its evidence and the noise, or that the noise was not measured."""
    rt, ref = settings["runtimes"][0], settings["reference"]
    best = max(rows, key=lambda r: r["mAP50-95"])
    noise = _noise(rows)
    close = [r for r in rows if noise is not None and r["mAP50-95"] >= best["mAP50-95"] - noise]
    pick = min(close or [best], key=lambda r: r[f"{rt} x"])
    text = (
        f"**{pick['name']}** ({pick['start']}): mAP50-95 {pick['mAP50-95']:.3f} at "
        f"{pick[f'{rt} x']:.2f}x {ref}'s {rt} latency ({pick[f'{rt} ms']:.2f} ms), "
        f"{pick['params_M']:.2f} M parameters, {pick['GFLOPs']:.2f} GFLOPs "
        f"at {settings['imgsz']} px"
    )
    if noise is None:
        return text + (
            ". The highest mAP measured. One seed per candidate: the noise was not measured, "
            "so a difference of a few points may be noise; rerun with --seeds 3 to know."
        )
    if pick is best:
        return text + (
            f". The highest mAP, and no candidate within the noise "
            f"(the largest seed spread, {noise:.3f} over {settings['seeds']} seeds) is faster."
        )
    return text + (
        f". {best['name']} scored {best['mAP50-95']:.3f}, a difference of "
        f"{best['mAP50-95'] - pick['mAP50-95']:.3f}, smaller than the noise (the largest seed "
        f"spread, {noise:.3f} over {settings['seeds']} seeds): noise, and {pick['name']} is faster."
    )


def dominance(rows: Sequence[dict[str, Any]], settings: dict[str, Any]) -> list[str]:
    """For each stock candidate and runtime: the effzoo rows that dominate it (no slower,
    higher mAP beyond the seed spread)."""
    noise = _noise(rows) or 0.0
    lines = []
    for s in (r for r in rows if r["kind"] == "stock"):
        for rt in settings["runtimes"]:
            by = [
                r["name"]
                for r in rows
                if r["kind"] != "stock"
                and r[f"{rt} x"] <= s[f"{rt} x"]
                and r["mAP50-95"] > s["mAP50-95"] + noise
            ]
            lines.append(
                f"- {s['name']} in {rt}: "
                + (f"dominated by {', '.join(by)}" if by else "no effzoo candidate dominates it")
            )
    return lines


def _md_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    cols = [k for k in rows[0] if k not in ("run_dir", "model", "kind")]
    fmt = lambda v: "" if v is None else f"{v:g}" if isinstance(v, float) else str(v)  # noqa: E731
    return [
        "| " + " | ".join(cols) + " |",
        "|" + "|".join("---" for _ in cols) + "|",
        *("| " + " | ".join(fmt(r[k]) for k in cols) + " |" for r in rows),
    ]


def precisions(times: dict[str, dict[str, Any]]) -> list[str]:
    """A line per runtime that chose its own precision (OpenVINO through Ultralytics'
    AutoBackend: bf16 on a CPU with AVX512_BF16 or AMX, f32 otherwise): what its column
    measured."""
    lines = []
    for rt, records in times.items():
        seen = sorted({r.get("precision") for r in records.values()} - {None})
        if seen:
            rest = "NNCF's quantized layers in int8, the others in " if rt.endswith("int8") else ""
            lines.append(
                f"- Precision, {rt}: {rest}{' / '.join(seen)}: OpenVINO's default on this "
                "machine as Ultralytics' AutoBackend compiles it (bf16 where the CPU has "
                "AVX512_BF16 or AMX, f32 otherwise)"
            )
    return lines


def plot(rows: Sequence[dict[str, Any]], runtime: str, ref: str, path: Path) -> Path | None:
    """mAP50-95 against latency / reference, the front joined; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for r in rows:
        err = (r["seed_spread"] or 0) / 2
        ax.errorbar(r[f"{runtime} x"], r["mAP50-95"], yerr=err or None, fmt="o", capsize=3)
        ax.annotate(
            r["name"],
            (r[f"{runtime} x"], r["mAP50-95"]),
            fontsize=7,
            xytext=(4, 4),
            textcoords="offset points",
        )
    front = [next(r for r in rows if r["name"] == n) for n in pareto(rows, runtime)]
    ax.plot([r[f"{runtime} x"] for r in front], [r["mAP50-95"] for r in front], "k--", lw=1)
    ax.set_xlabel(f"{runtime} latency / {ref}")
    ax.set_ylabel("mAP50-95")
    ax.set_title("effzoo compare: the front (dashed)")
    fig.tight_layout()
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
    rows = table_rows(cands, runs, exports, times, settings)
    csv_path = root / "compare.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    rt, ref = settings["runtimes"][0], settings["reference"]
    png = plot(rows, rt, ref, root / "compare.png")
    rec = recommend(rows, settings)
    data = "the demo data (generated)" if settings["demo_data"] else settings["data"]
    t = settings["timing"]
    lines = [
        "# effzoo compare",
        "",
        f"{len(rows)} candidates trained on {data}: {settings['epochs']} epochs at "
        f"{settings['imgsz']} px, batch {settings['batch']}, {settings['seeds']} seed(s) each "
        f"(seeds 0-{settings['seeds'] - 1}); latency as a ratio to {ref}.",
        "",
        *((settings["stock_note"], "") if settings.get("stock_note") else ()),  # candidates'
        *_md_table(rows),
        "",
        "## Recommendation",
        "",
        rec,
        "",
        "## Pareto front (mAP50-95 against latency)",
        "",
        *(f"- {r}: {' < '.join(pareto(rows, r))}" for r in settings["runtimes"]),
        "",
        "Stock models and whether an effzoo candidate dominates them:",
        "",
        *dominance(rows, settings),
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
        f"{settings['device']}; mAP: `val` of `best.pt` on the validation split, the mean over "
        "seeds; the seed spread is the largest minus the smallest.",
        "- Export: `model.export(format=...)` with Ultralytics' defaults at the training size, "
        "from the first seed's `best.pt`; an INT8 artifact is validated the same way "
        "(`int8 change (seed 0)`: its mAP50-95 minus that of the `best.pt` it was made from).",
        "- Latency: each candidate against the reference, in a process of their own per "
        "runtime, through Ultralytics' AutoBackend (the raw forward, no pre- or "
        f"post-processing), batch 1; {t['warmup']} warm-up calls, then {t['rounds']} rounds "
        f"of {t['per_round']} calls in a shuffled order; ms: the median call; x: the median "
        "over rounds of the per-round median ratio to the reference.",
        *precisions(times),
        f"- Runs (Ultralytics' directories): {root / 'runs'}",
        "",
        "## Machine",
        "",
        *(f"- {k}: {v}" for k, v in machine().items()),
        "",
    ]
    report = root / "compare.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    return {"table": rows, "csv": csv_path, "report": report, "plot": png, "recommendation": rec}
