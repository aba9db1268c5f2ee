"""The intervals ``effzoo compare`` reports: 95% percentile bootstraps, seeded (the same
numbers on every rerun).

- Latency: per artifact the median call of each round; a ratio is the median of one
  artifact's rounds over the median of the other's, resampled by round (both were timed
  in the same rounds, so the pair is resampled together).
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


def ms_interval(rounds: Sequence[float]) -> tuple[float, float, float]:
    """(median of the rounds, 95% interval) in ms."""
    x = np.asarray(rounds, dtype=float)
    idx = _rng().integers(0, len(x), size=(LATENCY_B, len(x)))
    boot = np.median(x[idx], axis=1)
    return float(np.median(x)), float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))


def ratio_interval(cand: Sequence[float], ref: Sequence[float]) -> tuple[float, float, float]:
    """(median(cand) / median(ref), 95% interval), rounds resampled in pairs."""
    c, r = np.asarray(cand, dtype=float), np.asarray(ref, dtype=float)
    n = min(len(c), len(r))
    c, r = c[:n], r[:n]
    idx = _rng().integers(0, n, size=(LATENCY_B, n))
    boot = np.median(c[idx], axis=1) / np.median(r[idx], axis=1)
    est = float(np.median(c) / np.median(r))
    return est, float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))


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

    t975 = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571, 7: 2.447, 8: 2.365, 9: 2.306}
    n = len(values)
    m, sd = statistics.mean(values), statistics.stdev(values)
    h = t975.get(n, 2.262 if n < 15 else 2.0) * sd / sqrt(n)
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
