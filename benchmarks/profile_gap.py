"""Where the fused path's time goes, next to ONNX Runtime's, by kind of operation.

Profiles one variant at batch 1 (PyTorch's profiler on ``fuse()``; ONNX Runtime's own
profiling on the exported graph), both with the same threads and input, and sums
each op's own time per forward by kind: dense, 1x1 and depthwise convolutions
(by their weight's shape), and everything else by op name.

    python benchmarks/profile_gap.py efficientnet_b0 --threads 2 --size 640
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from pathlib import Path

import torch

import effzoo
from effzoo.export import export_onnx


def _conv_kind(weight: list[int]) -> str:
    _, i_per_group, kh, kw = weight
    if kh == kw == 1:
        return "conv 1x1"
    if i_per_group == 1:
        return f"conv depthwise {kh}x{kw}"
    return f"conv dense {kh}x{kw}"


def profile_torch(model: torch.nn.Module, x: torch.Tensor, calls: int) -> dict[str, float]:
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode():
        for _ in range(3):
            model(x)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(calls):
                model(x)
    kinds: dict[str, float] = defaultdict(float)
    # self time per op and input shapes: the parts add up to the whole forward
    for e in prof.key_averages(group_by_input_shape=True):
        kind = e.key.split("::")[-1]
        shapes = [s for s in (e.input_shapes or []) if len(s) == 4]
        if "convolution" in e.key and len(shapes) >= 2:
            kind = _conv_kind(shapes[-1])  # the weight: the last 4-d argument
        kinds[kind] += e.self_cpu_time_total / 1e3 / calls
    return dict(kinds)


def profile_ort(path: Path, x: torch.Tensor, threads: int, calls: int) -> dict[str, float]:
    import onnxruntime as ort

    opts = ort.SessionOptions()  # as effzoo.export.session makes it, plus profiling
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.enable_profiling = True
    opts.profile_file_prefix = str(path.with_suffix(""))
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x.numpy()}
    for _ in range(3):
        sess.run(None, feed)
    # the profile covers every run; keep the last ``calls`` runs' node events
    for _ in range(calls):
        sess.run(None, feed)
    events = json.loads(Path(sess.end_profiling()).read_text())
    runs = [e for e in events if e.get("name") == "model_run"]
    start = runs[-calls]["ts"]
    kinds: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        if e["ts"] < start:
            continue
        op = e["args"]["op_name"]
        kind = op
        if op in ("Conv", "FusedConv"):
            shapes = [next(iter(s.values())) for s in e["args"].get("input_type_shape", [])]
            kind = _conv_kind(shapes[1]) if len(shapes) > 1 else op
        kinds[kind] += e["dur"] / 1e3 / calls
    return dict(kinds)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("variant", nargs="?", default="efficientnet_b0")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--size", type=int, default=640)
    p.add_argument("--calls", type=int, default=10)
    p.add_argument("--json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randn(1, 3, args.size, args.size)
    model = effzoo.create(args.variant, out_indices=(2, 3, 4)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{args.variant}.onnx"
        export_onnx(model, path, input_size=(args.size, args.size), verify=False)
        ort_kinds = profile_ort(path, x, args.threads, args.calls)
    torch_kinds = profile_torch(model.fuse(), x, args.calls)
    rows = sorted(set(ort_kinds) | set(torch_kinds), key=lambda k: -torch_kinds.get(k, 0.0))
    print(
        f"{args.variant}, {args.size}x{args.size}, batch 1, {args.threads} threads: ms per forward"
    )
    print(f"{'kind':<24} {'effzoo fused':>12} {'ONNX Runtime':>12}")
    for k in rows:
        print(f"{k:<24} {torch_kinds.get(k, 0.0):>12.2f} {ort_kinds.get(k, 0.0):>12.2f}")
    total_t, total_o = sum(torch_kinds.values()), sum(ort_kinds.values())
    print(f"{'sum of op times':<24} {total_t:>12.2f} {total_o:>12.2f}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"config": vars(args), "fused": torch_kinds, "onnxruntime": ort_kinds}, indent=1
            )
        )


if __name__ == "__main__":
    main()
