"""Write tests/data/effzoo-0.1-f3a39a1-v2b0-best.pt and its reference outputs.

The fixture of tests/test_yolo_checkpoint.py for checkpoints written before effzoo
pickled its own data (issue 28): a tiny YOLO11-style detector (nc=3, the shapes data's
classes) with an
``efficientnet_v2_b0`` row at width 0.25, depth 0.34 (TF "same" padding, Fused-MBConv,
SE, SiLU), trained one epoch at 64 px on the generated shapes data, exactly as
Ultralytics writes ``best.pt``. Made at commit f3a39a1 (effzoo 0.1.0, Ultralytics
8.4.190, timm 1.0.31, torch 2.14.1) with:

    PYTHONPATH=. .venv/bin/python scripts/make_checkpoint_fixture.py OUT_DIR

It writes OUT_DIR/best.pt (copied to tests/data/effzoo-0.1-f3a39a1-v2b0-best.pt) and
OUT_DIR/outputs.pt (tests/data/effzoo-0.1-f3a39a1-v2b0-outputs.pt): the model's raw
output, in float32 after ``.float()``, on ``torch.rand(1, 3, 64, 64)`` drawn from a
generator seeded with 0, and the boxes Ultralytics' ``predict`` finds on that input
scaled to 0..255 (``conf=0.0``, at most 5).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

YAML = """\
nc: 3
scales:
  n: [0.50, 0.25, 1024]
backbone:
  - [-1, 1, EfficientNet, [efficientnet_v2_b0, {width: 0.25, depth: 0.34, pretrained: false,
      levels: [3, 4, 5]}]]
head:
  - [-1, 1, nn.Upsample, [None, 2, "nearest"]]
  - [[-1, 1], 1, Concat, [1]]
  - [-1, 1, C3k2, [64, False]]
  - [[-1, 1, 2], 1, Detect, [nc]]
"""


def fixed_input():
    import torch

    return torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def main(out: Path) -> None:
    import torch
    from ultralytics import YOLO

    import effzoo.yolo  # noqa: F401
    from effzoo.demo.data import make_shapes_dataset

    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    make_shapes_dataset(data, n_train=8, n_val=4, imgsz=64, seed=1)
    cfg = out / "tiny-v2b0.yaml"
    cfg.write_text(YAML, encoding="utf-8")
    model = YOLO(str(cfg))
    model.train(
        data=str(data / "data.yaml"),
        epochs=1,
        imgsz=64,
        batch=4,
        workers=0,
        device="cpu",
        plots=False,
        amp=False,
        project=str(out),
        name="run",
        exist_ok=True,
        val=True,
    )
    best = out / "run" / "weights" / "best.pt"
    loaded = YOLO(str(best))
    x = fixed_input()
    with torch.no_grad():
        raw = loaded.model.float().eval()(x)[0]
    image = (x[0].permute(1, 2, 0).numpy() * 255).astype("uint8")[..., ::-1].copy()
    res = loaded.predict(image, imgsz=64, conf=0.0, max_det=5, device="cpu", verbose=False)[0]
    torch.save({"input_seed": 0, "raw": raw, "boxes": res.boxes.data.float()}, out / "outputs.pt")
    (out / "best.pt").write_bytes(best.read_bytes())
    print(best.stat().st_size, raw.shape, res.boxes.data.shape)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
