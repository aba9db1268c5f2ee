"""``effzoo compare``'s statistics, report and plot from known inputs: mAP as Ultralytics
computes it, intervals over images and seeds, comparisons only where the intervals say
so, a run where nothing learned, and a plot a person reads at a glance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ultralytics")

from effzoo.compare import stats
from effzoo.compare.candidates import Candidate
from effzoo.compare.report import (
    dominance,
    figure,
    learned,
    pareto,
    recommend,
    table_rows,
    warnings_first,
)


def _images(n: int, hit: float, seed: int) -> list[dict[str, np.ndarray]]:
    """Per-image validator statistics: two labels per image; a fraction ``hit`` of them
    found (true positives at every IoU threshold up to a random one), plus one false
    positive per image, with random confidences."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        cls = rng.integers(0, 3, size=2).astype(float)
        found = rng.random(2) < hit
        tp = np.zeros((3, 10), bool)
        for j in range(2):
            if found[j]:
                tp[j, : rng.integers(3, 11)] = True
        pred_cls = np.concatenate([cls, rng.integers(0, 3, size=1).astype(float)])
        out.append(dict(tp=tp, conf=rng.random(3), pred_cls=pred_cls, target_cls=cls))
    return out


def test_map_from_the_per_image_matches_is_ultralytics_own():
    """The bootstrap resamples what Ultralytics' DetMetrics computes mAP50-95 from: with
    every image once, effzoo's number is Ultralytics' to float precision."""
    from ultralytics.utils.metrics import DetMetrics

    per_image = _images(40, 0.6, seed=1)
    metrics = DetMetrics(names={0: "a", 1: "b", 2: "c"})
    if hasattr(metrics, "update_stats"):  # Ultralytics 8.4: per image, as its validator does
        for i, s in enumerate(per_image):
            target_img = np.unique(s["target_cls"])
            metrics.update_stats({**s, "target_img": target_img, "im_name": f"{i}.jpg"})
        metrics.process()
    else:  # 8.3: the concatenated arrays
        cat = {k: np.concatenate([s[k] for s in per_image]) for k in per_image[0]}
        metrics.process(cat["tp"], cat["conf"], cat["pred_cls"], cat["target_cls"])
    ours = stats.Matches.from_stats(per_image).map50_95()
    assert ours == pytest.approx(metrics.box.map, abs=1e-9)
    assert 0.05 < ours < 0.95


def test_the_matches_survive_their_file(tmp_path):
    m = stats.Matches.from_stats(_images(5, 0.5, seed=2))
    m.save(tmp_path / "m.npz")
    back = stats.Matches.load(tmp_path / "m.npz")
    assert back.images == 5 and back.map50_95() == m.map50_95()


def test_a_paired_bootstrap_tells_a_real_difference_from_noise():
    """A finds 90% of the labels, B 30%: A is more accurate by the paired interval. Two
    seeds of one model that differ only by chance are not told apart."""
    a = [stats.Matches.from_stats(_images(30, 0.9, seed=s)) for s in (1, 2)]
    b = [stats.Matches.from_stats(_images(30, 0.3, seed=s)) for s in (1, 2)]
    same = [stats.Matches.from_stats(_images(30, 0.9, seed=s)) for s in (1, 2)]
    runs = {n: [m.map50_95() for m in ms] for n, ms in (("a", a), ("b", b), ("c", same))}
    intervals, draws = stats.map_intervals(runs, {"a": a, "b": b, "c": same})
    for name, (lo, hi) in intervals.items():
        assert lo <= np.mean(runs[name]) <= hi, name
    assert stats.paired_difference(draws["a"], draws["b"])[0] > 0
    lo, hi = stats.paired_difference(draws["a"], draws["c"])
    assert lo <= 0 <= hi


def test_without_per_image_matches_the_interval_is_over_seeds():
    intervals, draws = stats.map_intervals({"a": [0.30, 0.32, 0.34], "b": [0.5]}, None)
    lo, hi = intervals["a"]
    assert lo < 0.32 < hi and hi - lo == pytest.approx(2 * 4.303 * 0.02 / 3**0.5, rel=1e-6)
    assert intervals["b"] is None and draws == {}


#: Student's t, 97.5% quantile, for the mean of n values (printed tables, n - 1 df)
T_TABLE = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 10: 2.262, 13: 2.179, 15: 2.145}
T_TABLE |= {21: 2.086, 31: 2.042, 61: 2.000, 121: 1.980}


@pytest.mark.parametrize("n, t", T_TABLE.items())
def test_the_t_quantile_is_student_s_for_any_number_of_processes(n, t):
    """A timing with 15-60 processes gets the t of its own count, not a rounded one that
    would make its interval too narrow."""
    assert stats._t975(n) == pytest.approx(t, abs=1e-3)


def test_a_latency_ratio_is_paired_by_round():
    """The machine's drift falls on the candidate and the reference of one round alike:
    the ratio is the median of the per-round ratios, and the drift cancels."""
    rng = np.random.default_rng(0)
    drift = 1 + 0.3 * rng.random(20)
    ref, cand = list(10 * drift), list(15 * drift * (1 + 0.01 * rng.standard_normal(20)))
    x, lo, hi = stats.ratio_interval(cand, ref)
    assert x == pytest.approx(stats.median(np.divide(cand, ref)))
    assert lo < 1.5 < hi and hi - lo < 0.15


def _processes(rng, ratio: float, n_proc: int, rounds: int, between: float, within: float):
    """Rounds of a reference and a candidate timed in ``n_proc`` process pairs: each
    process pair has its own ratio (log-normal around ``ratio``, sd ``between``), each
    round its own noise (sd ``within``) and a machine drift common to both."""
    ref, cand, process = [], [], []
    for g in range(n_proc):
        r_g = ratio * np.exp(between * rng.standard_normal())
        drift = 10 * (1 + 0.3 * rng.random(rounds))
        ref += list(drift * np.exp(within * rng.standard_normal(rounds)))
        cand += list(r_g * drift * np.exp(within * rng.standard_normal(rounds)))
        process += [g] * rounds
    return cand, ref, process


def test_the_ratio_s_interval_holds_what_differs_between_processes():
    """Processes whose ratios differ more than their rounds do (measured on this
    project's machine: one ONNX Runtime process pair at 0.65, the next at 0.81): the
    interval over processes covers the true ratio about 95% of the time; one made from
    the rounds alone, as if one process, would cover it far less often."""
    rng = np.random.default_rng(7)
    over_processes = over_rounds = 0
    trials = 400
    for _ in range(trials):
        cand, ref, process = _processes(rng, 1.5, 4, 5, between=0.05, within=0.02)
        _, lo, hi = stats.ratio_interval(cand, ref, process)
        over_processes += lo <= 1.5 <= hi
        _, lo, hi = stats.ratio_interval(cand, ref)
        over_rounds += lo <= 1.5 <= hi
    assert 0.91 <= over_processes / trials <= 0.99, over_processes / trials
    assert over_rounds / trials < 0.8, over_rounds / trials


def test_one_latency_s_interval_is_over_processes_too():
    rng = np.random.default_rng(1)
    rounds, process = [], []
    for g, ms in enumerate((9.2, 12.0, 9.4, 11.8)):  # one process fast, the next slow
        rounds += list(ms * (1 + 0.01 * rng.standard_normal(5)))
        process += [g] * 5
    est, lo, hi = stats.ms_interval(rounds, process)
    assert lo < 9.4 and hi > 11.8 and lo < est < hi
    _, lo1, hi1 = stats.ms_interval(rounds)  # as if one process: narrower
    assert hi1 - lo1 < hi - lo


# -- the report ----------------------------------------------------------------------------

REF = "yolo11n"


@pytest.fixture(autouse=True)
def _fewer_draws(monkeypatch):
    """200 bootstrap draws instead of 1000: the logic is the same, the suite faster."""
    monkeypatch.setattr(stats, "B", 200)


def _setup(hits: dict[str, float], ms: dict[str, float], kinds: dict[str, str], tmp_path: Path):
    """A table from per-image matches (two seeds each) and timing rounds."""
    rng = np.random.default_rng(3)
    cands, runs = [], {}
    for name, hit in hits.items():
        cands.append(Candidate(text=name, name=name, kind=kinds[name], start="scratch"))
        runs[name] = []
        for seed in range(2):
            d = tmp_path / f"{name}-{seed}"
            d.mkdir()
            m = stats.Matches.from_stats(_images(30, hit, seed=10 * seed + 1))
            m.save(d / "val-matches.npz")
            run = dict(map50_95=m.map50_95(), map50=m.map50_95(), params=1e6, gflops=1.0)
            runs[name].append(dict(run, run_dir=str(d), matches="val-matches.npz"))
    drift = 1 + 0.2 * rng.random(12)
    times = {"onnx": {"rounds_ms": {n: list(v * drift) for n, v in ms.items()}, "precision": {},
                      "other_cpus": 0.0, "complete": True}}  # fmt: skip
    exports = {n: {"onnx": {"runtime": "onnx"}} for n in hits}
    settings = {"reference": REF, "epochs": 30, "imgsz": 160, "columns": ["onnx"]}
    rows, ev = table_rows(cands, runs, exports, times, settings, tmp_path)
    return rows, ev, settings, times


def test_recommendation_and_dominance_follow_the_intervals(tmp_path):
    """lite0 and lite0-w0.5 are equally accurate (the same labels found), lite0-w0.5 is
    faster: it is recommended, and it dominates the less accurate, slower stock model."""
    hits = {REF: 0.3, "lite0": 0.9, "lite0-w0.5": 0.9, "b0": 0.9}
    ms = {REF: 10.0, "lite0": 14.0, "lite0-w0.5": 9.0, "b0": 20.0}
    kinds = {REF: "stock", "lite0": "effzoo", "lite0-w0.5": "effzoo", "b0": "effzoo"}
    rows, ev, settings, times = _setup(hits, ms, kinds, tmp_path)
    for r in rows:
        assert r["mAP50-95 lo"] <= r["mAP50-95"] <= r["mAP50-95 hi"]
        assert r["onnx x lo"] <= r["onnx x"] <= r["onnx x hi"]
        assert r["onnx ms lo"] <= r["onnx ms"] <= r["onnx ms hi"]
        assert not Path(r["run_dir"]).is_absolute()
    by = {r["name"]: r for r in rows}
    assert by["lite0"]["onnx x"] == pytest.approx(
        by["lite0"]["onnx ms"] / by[REF]["onnx ms"], rel=1e-3
    )
    text = recommend(rows, settings, ev)
    assert text.startswith("**lite0-w0.5**") and "paired over the same validation images" in text
    # lite0 and b0 are more accurate but slower by their intervals: no dominance
    assert dominance(rows, settings, ev) == [f"- {REF} in onnx: dominated by lite0-w0.5"]
    assert pareto(rows, "onnx", ev) == ["lite0-w0.5"]
    assert warnings_first(rows, times, settings) == []


def test_a_run_where_nothing_learned_recommends_nothing(tmp_path):
    hits = {REF: 0.0, "lite0": 0.0}
    rows, ev, settings, times = _setup(
        hits, {REF: 10.0, "lite0": 8.0}, {REF: "stock", "lite0": "effzoo"}, tmp_path
    )
    assert not learned(rows)
    first = warnings_first(rows, times, settings)
    assert first[0].startswith("**No candidate learned**") and "--epochs" in first[0]
    assert recommend(rows, settings, ev).startswith("None: no candidate learned")
    assert dominance(rows, settings, ev)[0].startswith("- none: no candidate learned")
    fig = figure(rows, {**settings, "columns": ["onnx"]}, ev)
    (ax,) = fig.axes
    assert ax.get_ylim()[0] == 0 and ax.get_ylim()[1] > 0  # no negative ticks, not flat


def test_a_busy_machine_is_said_first(tmp_path):
    rows, _, settings, times = _setup({REF: 0.5, "lite0": 0.9}, {REF: 10.0, "lite0": 8.0},
                                       {REF: "stock", "lite0": "effzoo"}, tmp_path)  # fmt: skip
    times["onnx"].update(other_cpus=1.4, load={"before": 3.2, "after": 3.9})
    (line,) = warnings_first(rows, times, settings)
    assert line.startswith("**The machine was busy while timing** (onnx)") and "1.40 CPUs" in line


def test_the_plot_has_a_panel_per_column_intervals_a_legend_and_labels_apart(tmp_path):
    names = [REF, "yolo11s", "lite0", "lite0-w0.5", "lite0-w0.35", "lite0-d0.5"]
    hits = dict(zip(names, (0.5, 0.55, 0.6, 0.58, 0.57, 0.56)))
    ms = dict(zip(names, (10.0, 10.2, 10.4, 10.1, 10.3, 10.05)))  # crowded on purpose
    kinds = {n: "stock" if n.startswith("yolo") else "effzoo" for n in names}
    rows, ev, settings, times = _setup(hits, ms, kinds, tmp_path)
    times["pytorch"] = ev.rounds["pytorch"] = times["onnx"]["rounds_ms"]
    for r in rows:
        r.update({k.replace("onnx", "pytorch"): v for k, v in r.items() if k.startswith("onnx")})
    fig = figure(rows, {**settings, "columns": ["onnx", "pytorch"]}, ev)
    assert [ax.get_title() for ax in fig.axes] == ["onnx", "pytorch"]
    for ax in fig.axes:
        labels = ax.get_legend().get_texts()
        assert {t.get_text() for t in labels} == {"stock Ultralytics", "effzoo backbone"}
        bars = [c for c in ax.containers if type(c).__name__ == "ErrorbarContainer"]
        assert all(c.has_xerr and c.has_yerr for c in bars) and len(bars) == 2
        texts = [t for t in ax.texts if t.get_text() in names]
        assert sorted(t.get_text() for t in texts) == sorted(names)
        r = fig.canvas.get_renderer()
        boxes = [t.get_window_extent(r) for t in texts]
        assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
        assert ax.get_ylim()[0] == 0
