"""The intervals ``effzoo compare`` reports: 95% percentile bootstraps, seeded (the same
numbers on every rerun).

- Latency: per artifact the median call of each round, the rounds timed in several
  fresh processes per artifact (``process``: the process of each round). A ratio is
  paired in time: per round, the candidate's median call over the reference's from the
  same round; per process, the median of those. What differs from one process to the
  next (where the runtime's threads landed, the machine's state then) is as large as
  what differs between rounds, so the processes are the replicates: the estimate is the
  geometric mean over processes, its interval a t interval over them (on the log). With
  one process, a bootstrap over its rounds, which leaves that out.
- Accuracy: mAP50-95 from the per-image matches Ultralytics' validator made (``Matches``),
  resampled by validation image (the same images for every candidate: paired) and by
  seed; without them, over seeds alone (a t interval), or none for one seed.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: bootstrap resamples (the percentiles of a 95% interval are stable to about ±0.5%)
B = 1000
LATENCY_B = 2000


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _t975(n: int) -> float:
    """The 97.5% quantile of Student's t for the mean of ``n`` values (``n - 1`` degrees of
    freedom): exact for 2-4 values, beyond that the Cornish-Fisher expansion around the
    normal quantile (within 0.001 of the exact value from 5 values on)."""
    v = n - 1
    if v < 4:
        return (12.706, 4.303, 3.182)[v - 1]
    z = 1.959964
    return (
        z
        + (z**3 + z) / (4 * v)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
        + (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / (92160 * v**4)
    )


def _by_process(x: np.ndarray, process: Sequence[int] | None) -> list[np.ndarray]:
    if process is None:
        return [x]
    p = np.asarray(process[: len(x)])
    return [x[p == g] for g in dict.fromkeys(p.tolist())]


def _interval(x: np.ndarray, process: Sequence[int] | None) -> tuple[float, float, float]:
    """(estimate, 95% interval) of the typical value of ``x`` (per-round values): over
    processes where there are several, else a bootstrap of the median over rounds."""
    groups = [g for g in _by_process(x, process) if len(g)]
    if len(groups) > 1:
        logs = np.log([np.median(g) for g in groups])
        m, h = logs.mean(), _t975(len(logs)) * logs.std(ddof=1) / np.sqrt(len(logs))
        return float(np.exp(m)), float(np.exp(m - h)), float(np.exp(m + h))
    idx = _rng().integers(0, len(x), size=(LATENCY_B, len(x)))
    boot = np.median(x[idx], axis=1)
    return float(np.median(x)), float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))


def ms_interval(
    rounds: Sequence[float], process: Sequence[int] | None = None
) -> tuple[float, float, float]:
    """(typical round in ms, its 95% interval)."""
    return _interval(np.asarray(rounds, dtype=float), process)


def ratio_interval(
    cand: Sequence[float], ref: Sequence[float], process: Sequence[int] | None = None
) -> tuple[float, float, float]:
    """(typical ratio of ``cand``'s round to ``ref``'s same round, its 95% interval)."""
    n = min(len(cand), len(ref))
    c, r = np.asarray(cand[:n], dtype=float), np.asarray(ref[:n], dtype=float)
    return _interval(c / r, process)


# -- accuracy ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Matches:
    """One validation of one model: per image, its predictions' matches at the ten IoU
    thresholds, their confidences and classes, and its labels' classes (Ultralytics'
    validator statistics), flattened with an image index."""

    tp: np.ndarray  # (n_pred, 10) bool
    conf: np.ndarray  # (n_pred,)
    pred_cls: np.ndarray  # (n_pred,)
    pred_img: np.ndarray  # (n_pred,) image index
    target_cls: np.ndarray  # (n_target,)
    target_img: np.ndarray  # (n_target,)
    images: int

    @classmethod
    def from_stats(cls, per_image: Sequence[dict[str, Any]]) -> Matches:
        tp = [np.asarray(s["tp"], dtype=bool).reshape(-1, 10) for s in per_image]
        tcls = [np.asarray(s["target_cls"], dtype=float).ravel() for s in per_image]
        return cls(
            tp=np.concatenate(tp) if tp else np.zeros((0, 10), bool),
            conf=np.concatenate([np.asarray(s["conf"], float).ravel() for s in per_image]),
            pred_cls=np.concatenate([np.asarray(s["pred_cls"], float).ravel() for s in per_image]),
            pred_img=np.concatenate([np.full(len(t), i) for i, t in enumerate(tp)]),
            target_cls=np.concatenate(tcls),
            target_img=np.concatenate([np.full(len(t), i) for i, t in enumerate(tcls)]),
            images=len(per_image),
        )

    def save(self, path: Any) -> None:
        np.savez_compressed(path, **{k: getattr(self, k) for k in self.__dataclass_fields__})

    @classmethod
    def load(cls, path: Any) -> Matches:
        with np.load(path) as z:
            return cls(**{k: (int(z[k]) if k == "images" else z[k]) for k in z.files})

    def map50_95(self, counts: np.ndarray | None = None) -> float:
        """mAP50-95 as Ultralytics computes it, with image ``i`` counted ``counts[i]``
        times (a bootstrap sample); all once by default."""
        from ultralytics.utils.metrics import ap_per_class

        if counts is None:
            tp, conf, pcls, tcls = self.tp, self.conf, self.pred_cls, self.target_cls
        else:
            pw, tw = counts[self.pred_img], counts[self.target_img]
            tp, conf, pcls = (np.repeat(a, pw, axis=0) for a in (self.tp, self.conf, self.pred_cls))
            tcls = np.repeat(self.target_cls, tw)
        if not len(tcls):
            return 0.0
        if not len(tp):
            return 0.0
        ap = ap_per_class(tp, conf, pcls, tcls)[5]
        return float(ap.mean()) if ap.size else 0.0


def _counts(images: int, rng: np.random.Generator) -> np.ndarray:
    return np.bincount(rng.integers(0, images, size=images), minlength=images)


def _seed_t(values: Sequence[float]) -> tuple[float, float]:
    """A 95% t interval of the mean over seeds."""
    from math import sqrt

    n = len(values)
    m, sd = statistics.mean(values), statistics.stdev(values)
    h = _t975(n) * sd / sqrt(n)
    return m - h, m + h


def map_intervals(
    runs: dict[str, list[float]], matches: dict[str, list[Matches]] | None
) -> tuple[dict[str, tuple[float, float] | None], dict[str, np.ndarray]]:
    """Per candidate a 95% interval of its mean mAP50-95, and its bootstrap draws (the
    same images drawn for every candidate, so two candidates' draws are paired). With
    ``matches`` for every run: images and seeds resampled; else over seeds (a t interval,
    no draws), or None for one seed."""
    have = matches is not None and all(
        len(matches.get(n, [])) == len(v) and v for n, v in runs.items()
    )
    if not have:
        return {n: (_seed_t(v) if len(v) > 1 else None) for n, v in runs.items()}, {}
    assert matches is not None
    images = {m.images for ms in matches.values() for m in ms}
    if len(images) != 1:  # not the same validation split: no pairing possible
        return {n: (_seed_t(v) if len(v) > 1 else None) for n, v in runs.items()}, {}
    n_img = images.pop()
    rng = _rng()
    draws = {n: np.empty(B) for n in runs}
    for b in range(B):
        counts = _counts(n_img, rng)
        for n, ms in matches.items():
            pick = rng.integers(0, len(ms), size=len(ms)) if len(ms) > 1 else [0]
            cache: dict[int, float] = {}
            vals = [cache.setdefault(int(i), ms[int(i)].map50_95(counts)) for i in pick]
            draws[n][b] = float(np.mean(vals))
    intervals = {
        n: (float(np.quantile(d, 0.025)), float(np.quantile(d, 0.975))) for n, d in draws.items()
    }
    return intervals, draws


def paired_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """95% interval of A's mAP minus B's over the paired bootstrap draws."""
    d = a - b
    return float(np.quantile(d, 0.025)), float(np.quantile(d, 0.975))
