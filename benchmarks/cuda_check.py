"""GPU check of every variant under mixed precision, and training memory on the GPU.

Usage: python benchmarks/cuda_check.py [--size 320] [--batch 4] [--json FILE] [variants...]

Per variant (random weights, built on the device):

* a training step under fp16 autocast: features have the expected shapes and are
  finite; parameter gradients are finite, and their cosine similarity with the
  float32 step's gradients says how far AMP moves them; median milliseconds of a
  full step (forward, backward, SGD with ``GradScaler``) and its peak memory;
* inference: ``fuse()`` in float32 against the eager model in float32 (TF32 off),
  and ``fuse()`` under fp16 autocast against the eager float32 output (relative
  error: max |difference| / max |reference| over the three levels, also for the
  eager model under autocast, so the two can be told apart); median
  milliseconds of eager and fused inference under autocast at the same batch.

Then, for ``--memory`` variants at ``--memory-size``, the peak memory of an AMP
training step with and without ``set_grad_checkpointing(True)``, and the largest
gradient difference between the two (cuDNN deterministic).

Without CUDA it runs on the CPU with bfloat16 autocast, to check the script.
Prints markdown tables; ``--json`` keeps every number with the machine description.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from timing import machine  # benchmarks/timing.py, next to this script

import effzoo


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_ms(fn: Callable[[], Any], device: torch.device, n: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(n):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


class Peak:
    """Peak bytes allocated above what was held on entry (CUDA allocator statistics)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.bytes = device, 0

    def __enter__(self) -> Peak:
        if self.device.type == "cuda":
            _sync(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            _sync(self.device)
            self.bytes = torch.cuda.max_memory_allocated(self.device) - self.start


def _loss(feats: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum(f.float().pow(2).mean() for f in feats)  # type: ignore[return-value]


def _grads(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten().float() for p in model.parameters() if p.grad is not None])


def _rel_err(out: Sequence[torch.Tensor], ref: Sequence[torch.Tensor]) -> float:
    return max(
        float((o.float() - r.float()).abs().max() / r.float().abs().max().clamp_min(1e-12))
        for o, r in zip(out, ref)
    )


def check_variant(
    name: str, size: int, batch: int, device: torch.device, amp: torch.dtype, repeats: int
) -> dict[str, Any]:
    torch.manual_seed(0)
    with device:
        model = effzoo.create(name)
    x = torch.randn(batch, 3, size, size, device=device)
    autocast = lambda: torch.autocast(device.type, dtype=amp)  # noqa: E731
    row: dict[str, Any] = {"variant": name, "size": size, "batch": batch}
    row["params_m"] = sum(p.numel() for p in model.parameters()) / 1e6

    # float32 reference gradients (batch norms in training mode; TF32 off)
    model.train()
    model.zero_grad(set_to_none=True)
    _loss(model(x)).backward()
    ref_grads = _grads(model)

    # the same step under autocast, unscaled loss
    model.zero_grad(set_to_none=True)
    with autocast():
        feats = model(x)
    expected = [(batch, c, size // s, size // s) for c, s in zip(model.out_channels, model.strides)]
    row["shapes_ok"] = [tuple(f.shape) for f in feats] == expected
    row["amp_dtype"] = str(feats[0].dtype).replace("torch.", "")
    row["features_finite"] = all(bool(torch.isfinite(f).all()) for f in feats)
    _loss(feats).backward()
    amp_grads = _grads(model)
    row["grads_finite"] = bool(torch.isfinite(amp_grads).all())
    row["grad_cosine"] = float(torch.nn.functional.cosine_similarity(amp_grads, ref_grads, dim=0))

    # a full AMP training step as a trainer runs it
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = _loss(model(x))
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    step()
    with Peak(device) as peak:
        step()
    row["train_step_ms"] = _median_ms(step, device, repeats)
    row["train_peak_mib"] = peak.bytes / 2**20

    # inference: eager fp32 reference, fused fp32, fused under autocast
    model.eval()
    with torch.inference_mode():
        ref = model(x)
        with autocast():
            row["eager_amp_rel_err"] = _rel_err(model(x), ref)
            eager_amp = lambda: model(x)  # noqa: E731
            row["eager_amp_ms"] = _median_ms(eager_amp, device, repeats)
        model.fuse()
        row["fused_fp32_rel_err"] = _rel_err(model(x), ref)
        with autocast():
            row["fused_amp_rel_err"] = _rel_err(model(x), ref)
            fused_amp = lambda: model(x)  # noqa: E731
            row["fused_amp_ms"] = _median_ms(fused_amp, device, repeats)
    return row


def memory_row(name: str, size: int, batch: int, device: torch.device, amp: torch.dtype) -> dict:
    torch.manual_seed(0)
    with device:
        model = effzoo.create(name)
    model.train()
    x = torch.randn(batch, 3, size, size, device=device)

    def step() -> None:
        with torch.autocast(device.type, dtype=amp):
            loss = _loss(model(x))
        loss.backward()

    step()  # gradients allocated once, as in a training loop
    peaks, grads = {}, {}
    for ckpt in (False, True):
        model.set_grad_checkpointing(ckpt)
        model.zero_grad(set_to_none=False)
        with Peak(device) as peak:
            step()
        peaks[ckpt], grads[ckpt] = peak.bytes / 2**20, _grads(model)
    return {
        "variant": name,
        "size": size,
        "batch": batch,
        "peak_mib": peaks[False],
        "peak_mib_checkpointing": peaks[True],
        "reduction": 1 - peaks[True] / peaks[False] if peaks[False] else float("nan"),
        "grad_max_abs_diff": float((grads[True] - grads[False]).abs().max()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("variants", nargs="*", help="default: every variant")
    p.add_argument("--size", type=int, default=320)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--repeats", type=int, default=5, help="timed calls per median")
    p.add_argument("--memory", default="efficientnet_v2_s,efficientnet_b3")
    p.add_argument("--memory-size", type=int, default=640)
    p.add_argument("--memory-batch", type=int, default=8)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    amp = torch.float16 if cuda else torch.bfloat16
    # float32 references in float32, not TF32; deterministic cuDNN for the gradient diffs
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(f"device: {torch.cuda.get_device_name(0) if cuda else 'cpu'}, autocast {amp}")
    rows: list[dict[str, Any]] = []
    mem: list[dict[str, Any]] = []
    failures: list[str] = []
    about = {"config": vars(args) | {"json": str(args.json)}, "machine": machine()}

    def save() -> None:  # after every row: a run cut short keeps what it measured
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            payload = about | {"variants": rows, "memory": mem, "failures": failures}
            args.json.write_text(json.dumps(payload, indent=1))

    print(
        "| variant | params M | AMP step ms | AMP step peak MiB | grad cos (AMP, fp32) "
        "| fused fp32 rel err | eager AMP rel err | fused AMP rel err "
        "| eager AMP ms | fused AMP ms |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in args.variants or effzoo.list_models():
        try:
            r = check_variant(name, args.size, args.batch, device, amp, args.repeats)
        except Exception as e:  # report and go on: one variant must not hide the others
            failures.append(f"{name}: {type(e).__name__}: {e}")
            print(f"| {name} | FAILED: {type(e).__name__}: {e} |", flush=True)
            continue
        ok = r["shapes_ok"] and r["features_finite"] and r["grads_finite"]
        if not ok:
            failures.append(f"{name}: {r}")
        rows.append(r)
        print(
            f"| {name}{'' if ok else ' (FAILED)'} | {r['params_m']:.1f} | {r['train_step_ms']:.1f} "
            f"| {r['train_peak_mib']:.0f} | {r['grad_cosine']:.5f} "
            f"| {r['fused_fp32_rel_err']:.1e} | {r['eager_amp_rel_err']:.1e} "
            f"| {r['fused_amp_rel_err']:.1e} "
            f"| {r['eager_amp_ms']:.2f} | {r['fused_amp_ms']:.2f} |",
            flush=True,
        )
        save()
        if cuda:
            torch.cuda.empty_cache()

    print("\n| variant | input | batch | peak MiB | checkpointing | reduction | grad max diff |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    for name in filter(None, args.memory.split(",")):
        m = memory_row(name, args.memory_size, args.memory_batch, device, amp)
        mem.append(m)
        save()
        print(
            f"| {name} | {m['size']} | {m['batch']} | {m['peak_mib']:.0f} "
            f"| {m['peak_mib_checkpointing']:.0f} | {m['reduction']:.0%} "
            f"| {m['grad_max_abs_diff']:.1e} |",
            flush=True,
        )
    save()
    for f in failures:
        print(f"FAILED {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
