"""INT8 with its mAP, and deployed latency: what scripts/int8_map.sh runs in its venv.

``train``: one model trained by ``effzoo compare`` (``effzoo.compare``) on the demo
data (60 epochs at 160 px by default), its run recorded in ``OUT/ROW-START.json``.
``eval``: that run's ``best.pt`` validated in PyTorch, then exported the way users do
(``model.export(format="openvino")`` and ``format="openvino", int8=True, data=...``:
NNCF post-training quantization calibrated on the data's images) and each artifact
validated through ``YOLO(path).val(...)``: mAP50-95 and mAP50 into ``OUT/ROW.json``.
``ort``: Ultralytics' default ONNX export quantized by ONNX Runtime
(``quantize_static``), validated the same way.
``artifacts``: ONNX, OpenVINO and OpenVINO int8 exports at 320 px for ``latency``: one
artifact's raw forward in a process of its own (its runtime's own thread pool next to
nothing else), median over rounds of 5 calls. ``report``: the Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: int8_map.sh's ROW:START items as ``effzoo compare`` candidates
CANDIDATES = {
    ("lite0", "pretrained"): "efficientnet_lite0",
    ("b0", "scratch"): "efficientnet_b0:scratch",
    ("v2b0", "scratch"): "efficientnet_v2_b0:scratch",
    ("yolo11n", "scratch"): "yolo11n.yaml",
}


def _train(row: str, start: str, epochs: int, out: Path) -> None:
    """One candidate through ``effzoo compare`` (its own folder, so two can run at once;
    a rerun finds the run done), recorded where ``eval`` and ``report`` read it."""
    import torch
    import yaml

    from effzoo.yolo import compare

    if (row, start) not in CANDIDATES:
        sys.exit(f"int8_map.py train: unknown row {row}:{start}; known: {sorted(CANDIDATES)}")
    torch.set_num_threads(1)  # int8_map.sh trains two at a time
    result = compare(
        [CANDIDATES[row, start]], epochs=epochs, runtimes=("pytorch",), out=out / f"compare-{row}"
    )
    first = result.table[0]
    run_dir = Path(first["run_dir"])
    record = {
        "model": row,
        "start": start,
        "epochs": epochs,
        "candidate": CANDIDATES[row, start],
        "save_dir": str(run_dir),
        "data_yaml": yaml.safe_load((run_dir / "args.yaml").read_text())["data"],
        "map50_95": first["mAP50-95"],
    }
    (out / f"{row}-{start}.json").write_text(json.dumps(record, indent=1))


def _metrics(m: Any) -> dict[str, float]:
    return {"map50_95": round(float(m.box.map), 4), "map50": round(float(m.box.map50), 4)}


def _force_f32() -> None:
    """Compile every OpenVINO model of this process with INFERENCE_PRECISION_HINT=f32
    (OpenVINO's CPU default is bf16 where the CPU has bf16 instructions: AMX, or
    AVX512_BF16 as on this AMD EPYC; int8 layers stay int8)."""
    import openvino as ov

    original = ov.Core.compile_model

    def compile_model(self, model, device_name=None, config=None, *args, **kwargs):  # type: ignore[no-untyped-def]
        config = {**(config or {}), "INFERENCE_PRECISION_HINT": "f32"}
        return original(self, model, device_name or "CPU", config, *args, **kwargs)

    ov.Core.compile_model = compile_model


def _eval(record: Path, imgsz: int, f32: bool = False) -> None:
    from ultralytics import YOLO

    import effzoo.yolo  # noqa: F401  (the rows; a checkpoint would bring it too)

    if f32:
        _force_f32()

    run = json.loads(record.read_text())
    best = Path(run["save_dir"]) / "weights" / "best.pt"
    data = run["data_yaml"]
    kw: dict[str, Any] = dict(data=data, imgsz=imgsz, batch=1, device="cpu", plots=False)
    out: dict[str, Any] = {"imgsz": imgsz}
    out["pytorch"] = _metrics(YOLO(str(best)).val(**kw))
    for name, extra in (("openvino_fp32", {}), ("openvino_int8", {"int8": True, "data": data})):
        t = time.time()
        path = YOLO(str(best)).export(format="openvino", imgsz=imgsz, **extra)
        out[name] = _metrics(YOLO(path, task="detect").val(**kw)) | {
            "export_s": round(time.time() - t, 1),
            "artifact": str(path),
        }
    run["int8_f32" if f32 else "int8"] = out
    record.write_text(json.dumps(run, indent=1))


def _latency(artifact: str, runtime: str, imgsz: int, rounds: int) -> dict[str, Any]:
    """Median ms of the artifact's raw forward at batch 1, each round 5 calls."""
    import numpy as np

    x = np.random.default_rng(0).random((1, 3, imgsz, imgsz), dtype=np.float32)
    if runtime == "onnxruntime":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(os.environ.get("THREADS", "2"))
        sess = ort.InferenceSession(artifact, opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name

        def call() -> Any:
            return sess.run(None, {name: x})
    else:
        import openvino as ov

        core = ov.Core()
        xml = next(Path(artifact).glob("*.xml")) if Path(artifact).is_dir() else Path(artifact)
        config = {"INFERENCE_NUM_THREADS": int(os.environ.get("THREADS", "2"))}
        config["INFERENCE_PRECISION_HINT"] = "f32"  # int8 layers stay int8; the rest f32
        compiled = core.compile_model(core.read_model(str(xml)), "CPU", config)

        def call() -> Any:
            return compiled(x)

    for _ in range(3):
        call()
    medians = []
    for _ in range(rounds):
        times = []
        for _ in range(5):
            t = time.perf_counter()
            call()
            times.append((time.perf_counter() - t) * 1e3)
        medians.append(statistics.median(times))
    return {"median_ms": round(statistics.median(medians), 2), "round_medians": medians}


def _artifacts(record: Path, imgsz: int) -> None:
    """ONNX, OpenVINO and OpenVINO int8 at ``imgsz`` for the latency runs (static shape,
    Ultralytics' defaults), their paths into the record."""
    from ultralytics import YOLO

    import effzoo.yolo  # noqa: F401

    run = json.loads(record.read_text())
    best = str(Path(run["save_dir"]) / "weights" / "best.pt")
    data = run["data_yaml"]
    # each export writes next to best.pt under the same name: move it aside first
    paths = {}
    for name, fmt, extra in (
        ("onnx", "onnx", {}),
        ("openvino_fp32", "openvino", {}),
        ("openvino_int8", "openvino", {"int8": True, "data": data}),
    ):
        path = Path(YOLO(best).export(format=fmt, imgsz=imgsz, **extra))
        kept = path.with_name(f"{name}-{imgsz}{path.suffix}")
        if kept.exists():
            shutil.rmtree(kept) if kept.is_dir() else kept.unlink()
        paths[name] = str(path.rename(kept))
    run["deploy"] = {"imgsz": imgsz, "artifacts": paths}
    record.write_text(json.dumps(run, indent=1))


def _calibration_images(data_yaml: str, imgsz: int) -> list[Any]:
    """The images Ultralytics calibrates NNCF on (its default: the data's ``val`` split),
    letterboxed to ``imgsz`` as its validation does, as float32 NCHW batches of one."""
    import cv2
    import numpy as np
    from ultralytics.data.augment import LetterBox
    from ultralytics.data.utils import check_det_dataset

    folder = Path(check_det_dataset(data_yaml)["val"])
    box = LetterBox(new_shape=(imgsz, imgsz), auto=False)
    batches = []
    for path in sorted(folder.glob("*.png")) + sorted(folder.glob("*.jpg")):
        img = box(image=cv2.imread(str(path)))[..., ::-1]  # BGR -> RGB, as Ultralytics feeds
        x = np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32) / 255.0
        batches.append(x[None])
    return batches


def _kept_float(onnx_path: Path) -> list[str]:
    """The nodes Ultralytics keeps out of NNCF's int8 (its ``IgnoredScope``): the detect
    head (the graph's last ``/model.N/`` module: boxes and scores share one output) and
    every Sigmoid. Quantizing them too gives mAP 0 (measured on the Lite0 row)."""
    import re

    import onnx

    nodes = onnx.load(str(onnx_path)).graph.node
    found = [int(m.group(1)) for n in nodes if (m := re.search(r"/model\.(\d+)/", n.name))]
    head = f"/model.{max(found)}/" if found else "\0"
    return [n.name for n in nodes if n.op_type == "Sigmoid" or n.name.startswith(head)]


def _ort_int8(record: Path, imgsz: int, whole: bool = False) -> None:
    """ONNX Runtime static quantization: Ultralytics' default ONNX export, quantized with
    ``onnxruntime.quantization.quantize_static`` (QDQ, int8 weights per channel and
    activations, MinMax calibration on the images Ultralytics gives NNCF; the nodes
    Ultralytics keeps float for NNCF kept float here, unless ``whole``), both validated
    through ``YOLO(path).val`` as the OpenVINO artifacts are."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from ultralytics import YOLO

    import effzoo.yolo  # noqa: F401

    run = json.loads(record.read_text())
    best = Path(run["save_dir"]) / "weights" / "best.pt"
    data = run["data_yaml"]
    kw: dict[str, Any] = dict(data=data, imgsz=imgsz, batch=1, device="cpu", plots=False)
    fp32 = Path(YOLO(str(best)).export(format="onnx", imgsz=imgsz))
    images = _calibration_images(data, imgsz)
    name = "images"  # the input Ultralytics' ONNX export names

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.left = iter(images)

        def get_next(self) -> dict[str, Any] | None:
            x = next(self.left, None)
            return None if x is None else {name: x}

    prepared = fp32.with_name(f"{fp32.stem}-prep.onnx")
    quant = fp32.with_name(f"{fp32.stem}-int8{'-whole' if whole else ''}.onnx")
    t = time.time()
    quant_pre_process(str(fp32), str(prepared))
    excluded = [] if whole else _kept_float(prepared)
    quantize_static(
        str(prepared),
        str(quant),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QInt8,
        nodes_to_exclude=excluded,
    )
    quant_s = round(time.time() - t, 1)
    out: dict[str, Any] = {"imgsz": imgsz, "calibration_images": len(images)}
    out["onnx_fp32"] = _metrics(YOLO(str(fp32), task="detect").val(**kw))
    out["onnx_int8"] = _metrics(YOLO(str(quant), task="detect").val(**kw)) | {
        "quantize_s": quant_s,
        "nodes_kept_float": len(excluded),
        "artifact": str(quant),
    }
    run["ort_int8_whole" if whole else "ort_int8"] = out
    record.write_text(json.dumps(run, indent=1))


RUNTIME = {"onnx": "onnxruntime", "openvino_fp32": "openvino", "openvino_int8": "openvino"}


def _report(out: Path) -> str:
    runs = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json"))}
    stock = next((r for k, r in runs.items() if k.startswith("yolo11n")), None)
    lines = [
        "| model | start | PyTorch | OpenVINO f32 | OpenVINO int8 (f32) | int8 - f32 "
        "| OpenVINO default (bf16) | int8 (bf16) "
        "| ONNX Runtime ms (/ YOLO11n) | OpenVINO f32 ms (/ YOLO11n) "
        "| OpenVINO int8 ms (/ YOLO11n) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in runs.values():
        q, f = r.get("int8", {}), r.get("int8_f32", {})
        cells = [r["model"], r["start"]]
        cells.append(f"{q['pytorch']['map50_95']:.3f}" if "pytorch" in q else "-")
        for k in ("openvino_fp32", "openvino_int8"):
            cells.append(f"{f[k]['map50_95']:.3f}" if k in f else "-")
        if "openvino_int8" in f:
            cells.append(f"{f['openvino_int8']['map50_95'] - f['openvino_fp32']['map50_95']:+.3f}")
        else:
            cells.append("-")
        for k in ("openvino_fp32", "openvino_int8"):
            cells.append(f"{q[k]['map50_95']:.3f}" if k in q else "-")
        for k in RUNTIME:
            ms = r.get("latency", {}).get(k)
            base = (stock or {}).get("latency", {}).get(k)
            cells.append(f"{ms:.1f} ({ms / base:.2f})" if ms and base else "-")
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "| model | start | ONNX Runtime f32 | ORT int8 | int8 - f32 | ORT int8, whole graph |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in runs.values():
        o, w = r.get("ort_int8", {}), r.get("ort_int8_whole", {})
        if not o:
            continue
        f, q = o["onnx_fp32"]["map50_95"], o["onnx_int8"]["map50_95"]
        whole = f"{w['onnx_int8']['map50_95']:.3f}" if w else "-"
        cells = [r["model"], r["start"], f"{f:.3f}", f"{q:.3f}", f"{q - f:+.3f}", whole]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("row")
    t.add_argument("--start", default="scratch", choices=("pretrained", "scratch"))
    t.add_argument("--epochs", type=int, default=60)
    t.add_argument("--out", type=Path, required=True)
    e = sub.add_parser("eval")
    e.add_argument("record", type=Path)
    e.add_argument("--imgsz", type=int, default=160)
    e.add_argument("--f32", action="store_true", help="OpenVINO forced to f32 (else its default)")
    o = sub.add_parser("ort", help="ONNX Runtime static quantization and its mAP")
    o.add_argument("record", type=Path)
    o.add_argument("--imgsz", type=int, default=160)
    o.add_argument("--whole", action="store_true", help="quantize the head and Sigmoids too")
    a = sub.add_parser("artifacts")
    a.add_argument("record", type=Path)
    a.add_argument("--imgsz", type=int, default=320)
    lat = sub.add_parser("latency")
    lat.add_argument("record", type=Path)
    lat.add_argument("artifact", choices=list(RUNTIME))
    lat.add_argument("--rounds", type=int, default=7)
    r = sub.add_parser("report")
    r.add_argument("out", type=Path)
    args = p.parse_args()
    if args.cmd == "train":
        args.out.mkdir(parents=True, exist_ok=True)
        _train(args.row, args.start, args.epochs, args.out)
    elif args.cmd == "eval":
        _eval(args.record, args.imgsz, args.f32)
    elif args.cmd == "ort":
        _ort_int8(args.record, args.imgsz, args.whole)
    elif args.cmd == "artifacts":
        _artifacts(args.record, args.imgsz)
    elif args.cmd == "latency":
        run = json.loads(args.record.read_text())
        deploy = run["deploy"]
        got = _latency(
            deploy["artifacts"][args.artifact], RUNTIME[args.artifact], deploy["imgsz"], args.rounds
        )
        run.setdefault("latency", {})[args.artifact] = got["median_ms"]
        run.setdefault("latency_rounds", {})[args.artifact] = got["round_medians"]
        args.record.write_text(json.dumps(run, indent=1))
    else:
        print(_report(args.out))


if __name__ == "__main__":
    main()
