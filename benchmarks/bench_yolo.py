"""End-to-end ``YOLO.predict`` latency: YOLO11n with an effzoo backbone vs stock YOLO11n.

Both models are built from yamls with random weights (nothing is downloaded):
stock ``yolo11n.yaml`` from Ultralytics, and the yaml ``effzoo.yolo.model_yaml``
writes for the variant (as ``effzoo yaml`` does) at scale n. ``predict`` runs
Ultralytics' own pipeline (letterbox, inference, NMS) on one 640x480 image;
Ultralytics fuses the model on its first call, which for the effzoo rows means
``Backbone.fuse()``.

Run through ``python benchmarks/bench.py --yolo``; imported by ``bench.py`` (never the
reverse), with the shared timing helpers in ``timing.py``.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from timing import Candidate, Result, interleave

from effzoo import lookup

#: variants with a shipped detect yaml that the end-to-end comparison uses by default
DEFAULT_YOLO_VARIANTS = ("efficientnet_b0", "efficientnet_v2_s")


def _short_name(variant: str) -> str:
    """``efficientnet_v2_s`` -> ``effv2s``, as in the shipped yaml names (``yolo11-effv2s``)."""
    return "eff" + lookup(variant).name.removeprefix("efficientnet_").replace("_", "")


def _image(size: int) -> np.ndarray:
    """A deterministic photo-like uint8 BGR image (4:3), no download."""
    h, w = size * 3 // 4, size
    yy, xx = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(0)
    img = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) * 127 // (h + w))], -1)
    img = img + rng.integers(0, 40, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def yolo_candidates(
    *,
    variants: Sequence[str] = DEFAULT_YOLO_VARIANTS,
    size: int = 640,
    device: str = "cpu",
    log: Callable[[str], None] = lambda s: None,
    models: Sequence[tuple[str, str, str]] = (),
) -> list[Candidate]:
    """``predict`` callables for stock YOLO11n and YOLO11n-<variant>, already warmed up;
    ``models`` (name, note, yaml) replaces that list."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    from effzoo.yolo import model_yaml  # importing effzoo.yolo registers the EfficientNet rows

    img = _image(size)
    work = Path(tempfile.mkdtemp(prefix="effzoo-bench-yolo-"))
    if not models:
        models = [("yolo11n", "stock yolo11n.yaml", "yolo11n.yaml")]
        for variant in variants:
            name = f"yolo11n-{_short_name(variant)}"
            path = work / f"{name}.yaml"  # "n" in the file name selects scale n
            path.write_text(model_yaml(variant, pretrained=False))
            models.append((name, f"effzoo {lookup(variant).name} backbone, scale n", str(path)))
    cands = []
    for name, note, cfg in models:
        t = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            model = YOLO(cfg, task="detect")
            kwargs: dict[str, Any] = dict(imgsz=size, device=device, verbose=False)
            if device == "cuda":
                kwargs["half"] = True
            model.predict(img, **kwargs)  # builds the predictor, fuses the model

        def run(model: Any = model, kwargs: dict[str, Any] = kwargs) -> Any:
            return model.predict(img, **kwargs)

        cands.append(Candidate(name, run, note, time.perf_counter() - t))
        log(f"  yolo: {name} ready ({cands[-1].setup_s:.1f}s)")
    return cands


def yolo_results(
    *,
    size: int = 640,
    rounds: int = 7,
    per_round: int = 3,
    warmup: int = 2,
    device: str = "cpu",
    variants: Sequence[str] = DEFAULT_YOLO_VARIANTS,
    log: Callable[[str], None] = lambda s: None,
) -> list[Result]:
    """Interleaved ``predict`` timings; empty (with a message) without Ultralytics."""
    try:
        cands = yolo_candidates(variants=variants, size=size, device=device, log=log)
    except ImportError as e:
        log(f'yolo: skipped ({e}); pip install "effzoo[yolo]"')
        return []
    sync: Callable[[], None] = lambda: None  # noqa: E731
    if device == "cuda":
        import torch

        sync = torch.cuda.synchronize
    times = interleave(cands, rounds=rounds, per_round=per_round, warmup=warmup, sync=sync)
    return [Result(f"yolo@{size}", c.name, times[c.name], c.note, c.setup_s) for c in cands]
