"""Side-by-side backbone latency against the peers, in one process.

Usage: python benchmarks/bench.py [variants...] [options]   (``-h`` lists the options)

For each variant it builds effzoo (eager and fused), timm ``features_only``
(NCHW and channels-last), torchvision's feature extractor and Ultralytics'
``TorchVision`` module where torchvision has the variant, and ONNX Runtime on the
exported effzoo graph; then times them interleaved (every round runs every
candidate, in a shuffled order) and prints medians and ratios. Ratios are
paired: the median over rounds of the ratio within a round, so a load spike
from another process affects both sides of a ratio alike. ``--yolo`` adds
YOLO11n-EfficientNet ``predict`` against stock YOLO11n (see ``bench_yolo.py``).

All weights are random (nothing is downloaded); latency does not depend on them.
Errors (an unknown variant or peer, a count below 1, a ``--json`` path that cannot be
written) print one line and exit non-zero, before anything is built or timed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from timing import Candidate, Result, interleave, machine, minor_faults
from torch import nn

import effzoo
from effzoo import BackboneSpec, lookup
from effzoo import _checks as checks
from effzoo.errors import EffzooError
from effzoo.paths import os_error_message, output_file, write_text

DEFAULT_VARIANTS = ("efficientnet_b0", "efficientnet_b3", "efficientnet_v2_s", "efficientnet_v2_m")
BASELINE = "timm"
ORT = "onnxruntime"
PROG = "benchmarks/bench.py"
#: every runner ``--peers`` can name; the default set leaves out the last two
PEERS = (
    "effzoo",
    "fused",
    "timm",
    "timm_cl",
    "torchvision",
    "ultralytics",
    ORT,
    "fused_nchw",
    "compiled",
)
DEFAULT_PEERS = PEERS[:-3]


def _torchvision_name(spec: BackboneSpec) -> str | None:
    """torchvision builder of the same architecture, if it has one."""
    suffix = spec.name.removeprefix("efficientnet_")
    if spec.family == "v1" and suffix in {f"b{i}" for i in range(8)}:
        return spec.name
    if spec.family == "v2" and suffix in ("v2_s", "v2_m", "v2_l"):
        return spec.name
    return None


def _level_children(features: nn.Sequential, levels: Sequence[int]) -> list[int]:
    """Index of the last child of torchvision's ``features`` at each level's stride
    (the final 1x1 head convolution excluded)."""
    x = torch.zeros(1, 3, 64, 64)
    last: dict[int, int] = {}
    with torch.no_grad():
        for i, child in enumerate(list(features)[:-1]):
            x = child(x)
            last[64 // x.shape[-1]] = i
    return [last[2 ** (lvl + 1)] for lvl in levels]


def _call(model: Callable[[torch.Tensor], Any], x: torch.Tensor) -> Callable[[], Any]:
    def run() -> Any:
        return model(x)

    return run


def candidates(
    variant: str,
    *,
    size: int = 640,
    batch: int = 1,
    threads: int = 2,
    peers: Sequence[str] = DEFAULT_PEERS,
    device: str = "cpu",
    workdir: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> list[Candidate]:
    """Build every requested way of running ``variant`` on one random input."""
    spec = lookup(variant)
    out_indices = (2, 3, 4)
    x = torch.randn(batch, 3, size, size, device=device)
    cands: list[Candidate] = []

    def add(name: str, build: Callable[[], Callable[[], Any]], note: str = "") -> None:
        if name not in peers:
            return
        t = time.perf_counter()
        try:
            run = build()
            with torch.inference_mode():
                run()  # first call: lazy init, oneDNN primitive creation
        except Exception as e:  # a peer that cannot run here is reported, not fatal
            log(f"  {variant}: skipping {name}: {type(e).__name__}: {e}")
            return
        cands.append(Candidate(name, run, note, time.perf_counter() - t))
        log(f"  {variant}: {name} ready ({cands[-1].setup_s:.1f}s)")

    def amp(model: nn.Module) -> Callable[[torch.Tensor], Any]:
        if device != "cuda":
            return model

        def run(inp: torch.Tensor) -> Any:
            with torch.autocast("cuda", dtype=torch.float16):
                return model(inp)

        return run

    def effzoo_eager() -> Callable[[], Any]:
        return _call(amp(effzoo.create(spec.name, out_indices=out_indices).eval().to(device)), x)

    def effzoo_fused() -> Callable[[], Any]:
        model = effzoo.create(spec.name, out_indices=out_indices).eval().to(device)
        return _call(amp(model.fuse()), x)

    def effzoo_fused_nchw() -> Callable[[], Any]:
        model = effzoo.create(spec.name, out_indices=out_indices).eval().to(device)
        return _call(amp(model.fuse(channels_last=False)), x)

    def timm_model() -> nn.Module:
        import timm

        return timm.create_model(spec.timm_arch, features_only=True, out_indices=out_indices)

    def timm_eager() -> Callable[[], Any]:
        return _call(amp(timm_model().eval().to(device)), x)

    def timm_cl() -> Callable[[], Any]:
        model = amp(timm_model().eval().to(device).to(memory_format=torch.channels_last))
        return lambda: model(x.contiguous(memory_format=torch.channels_last))

    tv_name = _torchvision_name(spec)

    def torchvision_fx() -> Callable[[], Any]:
        import torchvision
        from torchvision.models.feature_extraction import create_feature_extractor

        net = torchvision.models.get_model(tv_name, weights=None)
        idx = _level_children(net.features, out_indices)
        nodes = {f"features.{i}": f"p{lvl + 1}" for i, lvl in zip(idx, out_indices)}
        return _call(amp(create_feature_extractor(net, nodes).eval().to(device)), x)

    def ultralytics_tv() -> Callable[[], Any]:
        import torchvision
        from ultralytics.nn.modules import TorchVision

        idx = _level_children(
            torchvision.models.get_model(tv_name, weights=None).features, out_indices
        )
        # truncate=3: drop classifier, pooling and the 1x1 head conv; split: every stage's output
        module = amp(
            TorchVision(tv_name, weights=None, unwrap=True, truncate=3, split=True)
            .eval()
            .to(device)
        )

        def run() -> list[torch.Tensor]:
            y = module(x)  # [input, features[0], features[1], ...]
            return [y[i + 1] for i in idx]

        return run

    def onnxruntime() -> Callable[[], Any]:
        from effzoo.export import export_onnx, session

        path = Path(workdir or tempfile.mkdtemp(prefix="effzoo-bench-")) / f"{spec.name}.onnx"
        model = effzoo.create(spec.name, out_indices=out_indices).eval()
        export_onnx(model, path, input_size=(size, size), batch_size=batch, verify=False)
        sess = session(path, threads=threads)
        feed = {sess.get_inputs()[0].name: x.cpu().numpy()}
        return lambda: sess.run(None, feed)

    add("effzoo", effzoo_eager, "effzoo eager (timm blocks)")
    add("fused", effzoo_fused, "effzoo .fuse()")
    add("fused_nchw", effzoo_fused_nchw, "effzoo .fuse(channels_last=False)")
    add(BASELINE, timm_eager, f"timm {spec.timm_arch} features_only")
    add("timm_cl", timm_cl, "timm features_only, channels_last")
    if tv_name:
        add("torchvision", torchvision_fx, f"torchvision {tv_name} feature extractor")
        add("ultralytics", ultralytics_tv, f"ultralytics TorchVision({tv_name}) split")
    if device == "cpu":
        add(ORT, onnxruntime, "ONNX Runtime CPU, effzoo export")
    if "compiled" in peers:
        add("compiled", lambda: _compiled(spec.name, x), "torch.compile(fused=False)")
    return cands


def _compiled(name: str, x: torch.Tensor) -> Callable[[], Any]:
    # inductor freezing (weights as constants) for this model only: the option applies
    # whenever it is compiled (lazily, on its first call), and nowhere else in the process
    model = torch.compile(
        effzoo.create(name).eval().to(memory_format=torch.channels_last),
        options={"freezing": True},
    )
    xc = x.contiguous(memory_format=torch.channels_last)
    return lambda: model(xc)


def model_cost(variant: str, size: int = 640) -> dict[str, float]:
    """Parameters (millions) and GFLOPs (multiply-add = 2) of the P3-P5 extractor at ``size``."""
    from torch.utils.flop_counter import FlopCounterMode

    model = effzoo.create(variant).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    return {
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "gflops": counter.get_total_flops() / 1e9,
    }


def table(results: Sequence[Result], baseline: str = BASELINE) -> str:
    """Plain-text table: median, IQR, speed-up over ``baseline``, ratio to ONNX Runtime,
    minor page faults per warm call."""
    lines = [
        f"{'variant':<20} {'runner':<16} {'median ms':>10} {'IQR':>7} "
        f"{'x ' + baseline:>9} {'/ ORT':>6} {'faults':>7}  note"
    ]
    by_variant: dict[str, dict[str, Result]] = {}
    for r in results:
        by_variant.setdefault(r.variant, {})[r.name] = r
    for variant, rows in by_variant.items():
        base, ort = rows.get(baseline), rows.get(ORT)
        for r in rows.values():
            speed = f"{r.paired_ratio(base):.2f}" if base else "-"
            vs_ort = f"{1 / r.paired_ratio(ort):.2f}" if ort else "-"
            iqr = "-" if r.iqr_ms is None else f"{r.iqr_ms:.1f}"  # one call has no spread
            faults = "-" if r.minor_faults is None else f"{r.minor_faults:.0f}"
            lines.append(
                f"{variant:<20} {r.name:<16} {r.median_ms:>10.1f} {iqr:>7} "
                f"{speed:>9} {vs_ort:>6} {faults:>7}  {r.note}"
            )
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Backbone latency side by side (effzoo eager/fused, timm, torchvision, "
        "Ultralytics TorchVision, ONNX Runtime), interleaved in one process.",
    )
    p.add_argument("variants", nargs="*", default=list(DEFAULT_VARIANTS), help="variant names")
    p.add_argument("--size", type=int, default=640, help="square input size (default 640)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=2, help="torch and ORT intra-op threads")
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    p.add_argument("--per-round", type=int, default=3, help="timed calls per candidate per round")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per candidate (>= 0)")
    p.add_argument(
        "--peers",
        default=",".join(DEFAULT_PEERS),
        help=f"comma list of {', '.join(PEERS)}; the last two are not in the default: "
        "'fused_nchw' (fuse without channels-last), 'compiled' (torch.compile, slow to build)",
    )
    p.add_argument(
        "--device",
        default="cpu",
        choices=("cpu", "cuda"),
        help="cuda: fp16 autocast (AMP), ONNX Runtime skipped",
    )
    p.add_argument(
        "--yolo",
        action="store_true",
        help="also YOLO11n-EfficientNet predict vs stock YOLO11n (needs ultralytics)",
    )
    p.add_argument(
        "--tune-malloc",
        action="store_true",
        help="malloc.tune_allocator() first: glibc keeps large blocks (process-wide)",
    )
    p.add_argument("--json", help="write results and machine description here")
    return p


def check_args(args: argparse.Namespace) -> None:
    """Every option but the variants (``run`` looks them up first), before anything is
    built: counts >= 1 (``--warmup`` >= 0), known peers, a ``--json`` file that can be
    written. Normalises ``args`` in place."""
    for option in ("size", "batch", "threads", "rounds", "per_round"):
        checks.positive_int(f"--{option.replace('_', '-')}", getattr(args, option))
    checks.non_negative_int("--warmup", args.warmup)
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    if not peers:
        checks.fail(f"--peers names no runner; give a comma list of {', '.join(PEERS)}")
    args.peers = ",".join(checks.choice("--peers entry", p, PEERS) for p in peers)
    if args.json is not None:
        args.json = output_file("--json", args.json, example="bench.json")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        check_args(args)
        return run(args)
    except EffzooError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # writing --json: no space, permissions
        print(f"{PROG}: error: {os_error_message(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def run(args: argparse.Namespace) -> int:
    """The benchmark for checked arguments (``check_args``); effzoo's errors propagate
    (``main`` prints them)."""
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"{PROG}: error: --device cuda but no CUDA device is available", file=sys.stderr)
        return 2
    names = [lookup(variant).name for variant in args.variants]  # unknown names fail first
    if args.tune_malloc:
        from malloc import tune_allocator

        if not tune_allocator():
            print(f"{PROG}: --tune-malloc needs glibc; ignored", file=sys.stderr)
    torch.set_num_threads(args.threads)
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    before = machine()
    results: list[Result] = []
    costs: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="effzoo-bench-") as work:
        for name in names:
            cands = candidates(
                name,
                size=args.size,
                batch=args.batch,
                threads=args.threads,
                peers=peers,
                device=args.device,
                workdir=work,
                log=log,
            )
            log(f"timing {name}: {len(cands)} runners x {args.rounds} rounds")
            times = interleave(
                cands, rounds=args.rounds, per_round=args.per_round, warmup=args.warmup, sync=sync
            )
            faults = {c.name: minor_faults(c.run) for c in cands} if args.device == "cpu" else {}
            results += [
                Result(name, c.name, times[c.name], c.note, c.setup_s, faults.get(c.name))
                for c in cands
            ]
            costs[name] = model_cost(name, args.size)
            print(table([r for r in results if r.variant == name]), flush=True)
    if args.yolo:
        from bench_yolo import yolo_results

        results += yolo_results(
            size=args.size,
            rounds=args.rounds,
            per_round=args.per_round,
            warmup=args.warmup,
            device=args.device,
            log=log,
        )
        yolo = [r for r in results if r.variant.startswith("yolo")]
        print(table(yolo, baseline="yolo11n"), flush=True)
    after = machine()
    print(
        f"\nmachine: {before['cpu']}, {before['logical_cpus']} logical CPUs, "
        f"{args.threads} threads, load {before.get('loadavg')} -> {after.get('loadavg')}"
    )
    if args.json:
        payload = {
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "machine": before,
            "loadavg_after": after.get("loadavg"),
            "models": costs,
            "results": [
                {**asdict(r), "median_ms": r.median_ms, "iqr_ms": r.iqr_ms} for r in results
            ],
        }
        write_text("--json", args.json, json.dumps(payload, indent=1))
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
