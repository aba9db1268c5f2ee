"""Export effzoo YOLO rows with Ultralytics' own ``model.export(format=...)`` and its
defaults, load each artifact as a user does, and compare its raw output with a
float64 run of the PyTorch model. Prints one markdown table row per (row, format).

    python scripts/deploy_matrix.py --formats executorch coreml [--rows lite0 v2s] [--imgsz 96]

Run by scripts/deploy_matrix.sh, once per throwaway venv (each format's packages).
"rel" = max |artifact - PyTorch| / max |PyTorch|, boxes and class scores each (the
worse of the two); the models are random-init YOLO11n heads on each backbone, class
biases zeroed so scores sit near 0.5 (see tests/test_deploy.py). CoreML does not run
on Linux: its spec is loaded (``skip_model_load=True``) and its input and output
shapes are checked. OpenVINO is compiled with ``INFERENCE_PRECISION_HINT=f32``
(Ultralytics leaves the CPU's default, bf16 on AMX CPUs).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import traceback
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("YOLO_OFFLINE", "true")
os.environ.setdefault("YOLO_VERBOSE", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from deploy_rows import ROWS as EFFZOO_ROWS  # scripts/ is on sys.path: run as a script

#: row -> (variant, width, depth): the effzoo rows the tests export too, and stock
ROWS = {**EFFZOO_ROWS, "stock": ("", 1.0, 1.0)}  # stock: Ultralytics' own yolo11n.yaml
#: format -> extra export arguments (beyond Ultralytics' defaults)
FORMATS: dict[str, dict[str, Any]] = {
    "torchscript": {},
    "onnx": {},
    "onnx-nosimplify": {"simplify": False},
    "onnx-dynamic": {"dynamic": True},
    "openvino": {},
    "ncnn": {},
    "mnn": {},
    "paddle": {},
    "executorch": {},
    "litert": {},
    "coreml": {},
}
TOL = 1e-4


def build(row: str, root: Path) -> Any:
    from ultralytics import YOLO
    from ultralytics.nn.modules import Detect

    import effzoo.yolo  # noqa: F401
    from effzoo.yolo.templates import model_yaml, short_name

    variant, width, depth = ROWS[row]
    if variant:
        path = root / f"yolo11n-{short_name(variant)}.yaml"
        path.write_text(model_yaml(variant, width=width, depth=depth, pretrained=False))
        model = YOLO(str(path))
    else:
        model = YOLO("yolo11n.yaml")
    with torch.no_grad():
        for m in model.model.modules():
            if isinstance(m, Detect):
                for branch in (*m.cv3, *getattr(m, "one2one_cv3", ())):
                    branch[-1].bias.zero_()
    return model


def first(y: Any) -> torch.Tensor:
    while isinstance(y, (list, tuple)):
        y = y[0]
    if isinstance(y, dict):
        y = next(iter(y.values()))
    return torch.as_tensor(y)


def rel_error(got: torch.Tensor, ref: torch.Tensor) -> float:
    if tuple(got.shape) != tuple(ref.shape):
        raise AssertionError(f"output shape {tuple(got.shape)}, PyTorch {tuple(ref.shape)}")
    worst = 0.0
    for part in (slice(0, 4), slice(4, None)):
        r, g = ref[:, part].double(), got[:, part].double()
        worst = max(worst, float((g - r).abs().max()) / max(float(r.abs().max()), 1e-6))
    return worst


def run_artifact(fmt: str, path: str, x: torch.Tensor, want: tuple[int, ...]) -> torch.Tensor | str:
    if fmt == "coreml":
        import coremltools as ct

        spec = ct.models.MLModel(path, skip_model_load=True).get_spec()
        (inp,), outs = spec.description.input, spec.description.output
        image = inp.type.imageType
        size = (image.height, image.width) if inp.type.HasField("imageType") else None
        shapes = [tuple(o.type.multiArrayType.shape) for o in outs]
        if size != tuple(x.shape[-2:]) or shapes != [want]:  # not runnable on Linux: shapes
            raise AssertionError(
                f"CoreML input {size or inp.type}, outputs {shapes}; PyTorch "
                f"{tuple(x.shape[-2:])} -> {want}"
            )
        return f"spec loads, shapes match: image {size[0]}x{size[1]} -> {want[1:]}"
    if fmt == "openvino":
        import openvino as ov

        core = ov.Core()
        xml = next(Path(path).glob("*.xml"))
        compiled = core.compile_model(
            core.read_model(str(xml)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
        )
        return torch.from_numpy(compiled([x.numpy()])[compiled.output(0)])
    from ultralytics.nn.autobackend import AutoBackend

    backend = AutoBackend(path, device=torch.device("cpu"), verbose=False)
    with torch.no_grad():
        return first(backend(x)).float()


def check(
    model: Any, ref_model: torch.nn.Module, row: str, fmt: str, imgsz: int, root: Path
) -> str:
    kwargs = FORMATS[fmt]
    base = fmt.split("-")[0]
    where = root / f"{row}-{fmt}"
    where.mkdir()
    cwd = os.getcwd()
    os.chdir(where)
    try:
        out = str(Path(model.export(format=base, imgsz=imgsz, device="cpu", **kwargs)).resolve())
    except Exception as e:  # report, go on with the next format
        return f"export fails: {type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
    finally:
        os.chdir(cwd)
    sizes = [(imgsz, imgsz)] + ([(imgsz + 32, imgsz - 32)] if kwargs.get("dynamic") else [])
    worst = 0.0
    for i, (h, w) in enumerate(sizes):
        x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(i))
        with torch.no_grad():
            ref = first(ref_model(x.double())).float()
        try:
            got = run_artifact(base, out, x, tuple(ref.shape))
        except Exception as e:
            return f"exports; load/run fails: {type(e).__name__}: {str(e).splitlines()[0][:160]}"
        if isinstance(got, str):
            return got
        try:
            worst = max(worst, rel_error(got, ref))
        except AssertionError as e:
            return f"exports, runs; {e}"
    verdict = "ok" if worst <= TOL else "**WRONG**"
    return f"{verdict}: rel {worst:.1e}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--formats", nargs="+", default=["onnx"], choices=list(FORMATS))
    ap.add_argument("--rows", nargs="+", default=["b0", "lite0", "v2b0", "v2s", "b6tf"])
    ap.add_argument("--imgsz", type=int, default=96)
    ap.add_argument("--label", default="", help="a note for the table (the packages)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    failed = 0
    with tempfile.TemporaryDirectory(prefix="effzoo-deploy-") as tmp:
        root = Path(tmp)
        for row in args.rows:
            model = build(row, root)
            ref_model = copy.deepcopy(model.model).eval().double()
            for fmt in args.formats:
                try:
                    result = check(model, ref_model, row, fmt, args.imgsz, root)
                except Exception:  # a bug in this script: say so, go on
                    result = "error: " + traceback.format_exc().splitlines()[-1][:160]
                failed += not result.startswith(("ok", "spec loads"))
                print(f"| {row} | {fmt} | {result} | {args.label} |", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
