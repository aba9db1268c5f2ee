"""YOLO11 model yamls with an effzoo backbone, made on the user's machine.

effzoo ships no Ultralytics model file (they are AGPL-3.0). What it ships is the
effzoo row and which Ultralytics file it goes into: a model yaml is generated from
the *installed* Ultralytics' ``cfg/models/11/yolo11{,-seg,-pose,-obb,-cls}.yaml``
with its stem and stage rows (everything before SPPF/C2PSA) replaced by the effzoo
row, which occupies indices 0-4 (P1..P5); every later index is shifted to match, so
the head's references to P3, P4 and its own layers still point at the same layers.

``effzoo yaml VARIANT`` writes one; the model names in ``MODELS``
(``yolo11n-effv2s.yaml``, the forked recipe's ``yolo11-EfficientNetV1.yaml``, ...)
resolve by name inside Ultralytics once ``effzoo.yolo`` is imported.
"""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import _checks as checks
from .._version import __version__
from ..errors import InvalidArgumentError, UltralyticsContractError
from ..registry import lookup
from .rows import CANONICAL

TASKS = ("detect", "segment", "pose", "obb", "classify")
_SUFFIX = {"detect": "", "segment": "-seg", "pose": "-pose", "obb": "-obb", "classify": "-cls"}
#: backbone rows that stay after the effzoo row (they read P5)
_KEPT = ("SPPF", "C2PSA")
LEVELS = 5


@dataclass(frozen=True)
class ModelName:
    """A model yaml name effzoo provides: an effzoo row in an Ultralytics file."""

    name: str
    task: str
    row: tuple[Any, ...]  # [from, repeats, module, args]


def effzoo_row(
    variant: str, *, width: float = 1.0, depth: float = 1.0, pretrained: bool = True
) -> tuple[Any, ...]:
    """The canonical effzoo row for a variant (options only where they differ)."""
    opts: dict[str, Any] = {}
    if width != 1.0 or depth != 1.0:
        opts.update(width=float(width), depth=float(depth))
    if not pretrained:
        opts["pretrained"] = False
    return (-1, 1, CANONICAL, [lookup(variant).name, *([opts] if opts else [])])


def short_name(variant: str) -> str:
    """``efficientnet_v2_s`` -> ``effv2s``, ``efficientnet_b0`` -> ``effb0``."""
    return "eff" + lookup(variant).name.removeprefix("efficientnet_").replace("_", "")


def _model(variant: str, task: str = "detect") -> ModelName:
    name = f"yolo11-{short_name(variant)}{_SUFFIX[task]}.yaml"
    return ModelName(name, task, effzoo_row(variant))


#: every model name effzoo provides (``yolo11n-effv2s.yaml`` picks scale n of the second)
MODELS: dict[str, ModelName] = {
    m.name: m
    for m in (
        _model("efficientnet_lite0"),
        _model("efficientnet_b0"),
        _model("efficientnet_b3"),
        _model("efficientnet_v2_s"),
        _model("efficientnet_v2_m"),
        _model("efficientnet_b0", "segment"),
        _model("efficientnet_b0", "pose"),
        _model("efficientnet_v2_s", "segment"),
        # the forked recipe's two files: its rows, in stock YOLO11
        ModelName(
            "yolo11-EfficientNetV1.yaml",
            "detect",
            (-1, 1, "efficient", ["efficientnet-b0", 0.25, 0.5]),
        ),
        ModelName(
            "yolo11-EfficientNetV2.yaml",
            "detect",
            (-1, 1, "efficientnet_v2", ["efficientnet_v2_s", 0.25, 0.5]),
        ),
    )
}


def ultralytics_file(task: str) -> Path:
    """The installed Ultralytics' YOLO11 model file for ``task``."""
    import ultralytics

    task = checks.choice("task", task, TASKS)
    path = (
        Path(ultralytics.__file__).parent / "cfg" / "models" / "11" / f"yolo11{_SUFFIX[task]}.yaml"
    )
    if not path.is_file():
        raise UltralyticsContractError(
            f"the installed Ultralytics {ultralytics.__version__} has no {path.name} "
            f"(looked in {path.parent}); effzoo makes its YOLO11 yamls from it. "
            'Install a supported release with YOLO11 (docs/yolo.md): pip install -U "effzoo[yolo]"'
        )
    return path


def _shift(stock_backbone: list[list[Any]], source: str) -> tuple[int, dict[int, int]]:
    """(first kept row, old index -> new index of each P-level's last row)."""
    keep = next((i for i, r in enumerate(stock_backbone) if r[2] in _KEPT), None)
    level, ends = 0, {}
    for i, (_, _, module, args) in enumerate(stock_backbone[: keep or 0]):
        if module == "Conv" and len(args) > 2 and args[2] == 2:  # a stride-2 conv starts a level
            level += 1
        ends[level] = i
    if keep is None or sorted(ends) != list(range(1, LEVELS + 1)):
        raise UltralyticsContractError(
            f"{source} does not have the YOLO11 backbone effzoo expects (five stride-2 levels "
            f"before {' or '.join(_KEPT)}); effzoo cannot place its row in it"
        )
    return keep, {ends[k]: k - 1 for k in ends}


def splice(
    stock: dict[str, Any], row: tuple[Any, ...], *, source: str = "model yaml"
) -> dict[str, Any]:
    """``stock`` (a parsed YOLO11 yaml) with its stem and stages replaced by ``row``."""
    keep, level_ends = _shift(stock["backbone"], source)
    offset = keep - LEVELS

    def new(i: int) -> int:
        if i < 0:
            return i
        if i >= keep:
            return i - offset
        if i in level_ends:
            return level_ends[i]
        raise UltralyticsContractError(
            f"{source}: a row reads backbone layer {i}, which is not a P-level output; "
            "effzoo cannot place its row in this file"
        )

    def remap(r: list[Any]) -> list[Any]:
        frm = [new(i) for i in r[0]] if isinstance(r[0], list) else new(r[0])
        return [frm, *r[1:]]

    out = {k: v for k, v in stock.items() if k not in ("backbone", "head")}
    out["backbone"] = [list(row)] + [remap(r) for r in stock["backbone"][keep:]]
    out["head"] = [remap(r) for r in stock.get("head") or []]
    return out


_PLAIN = re.compile(r"[A-Za-z_][\w.\-]*")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def _flow(value: Any) -> str:
    """A value in YAML flow style, as Ultralytics' files write it."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if value is None:
        return "None"  # Ultralytics evaluates the string "None" to None
    if isinstance(value, str):
        plain = _PLAIN.fullmatch(value) and value.lower() not in _YAML_WORDS
        return value if plain else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def render(d: dict[str, Any], *, header: list[str]) -> str:
    """The text of a model yaml: ``header`` comment lines, the parameters, the rows."""
    lines = [f"# {h}" if h else "#" for h in header] + [""]
    for key, value in d.items():
        if key in ("backbone", "head"):
            continue
        if key == "scales":
            lines.append("scales: # [depth, width, max_channels]; the scale sizes the head")
            lines += [f"  {k}: {_flow(v)}" for k, v in value.items()]
        else:
            lines.append(f"{key}: {_flow(value)}")
    index = 0
    for section in ("backbone", "head"):
        lines += ["", f"{section}:"]
        if section == "backbone":
            lines.append("  # [from, repeats, module, args]")
        for row in d[section]:
            if index == 0:
                note = "0-4 P1/2, P2/4, P3/8, P4/16, P5/32"
                index = LEVELS
            else:
                note = str(index)
                index += 1
            lines.append(f"  - {_flow(row)} # {note}")
    return "\n".join(lines) + "\n"


def generate(task: str, row: tuple[Any, ...], *, nc: int | None = None, note: str = "") -> str:
    """The model yaml for ``row`` in the installed Ultralytics' YOLO11 file for ``task``."""
    import ultralytics
    import yaml

    path = ultralytics_file(task)
    text = path.read_text(encoding="utf-8")
    stock = yaml.safe_load(text)
    d = splice(stock, row, source=str(path))
    if nc is not None:
        d["nc"] = nc
    first = text.splitlines()[0].lstrip("# ").strip() if text.startswith("#") else ""
    header = [
        *([first] if "Ultralytics" in first else []),
        f"Made by effzoo {__version__} from {path.name} of the installed Ultralytics "
        f"{ultralytics.__version__}:",
        "its stem and stages replaced by the effzoo row (indices 0-4 = P1..P5).",
        "Needs `import effzoo.yolo` (or the `effzoo yolo` CLI) before Ultralytics builds it.",
        *([note] if note else []),
    ]
    return render(d, header=header)


def model_yaml(
    variant: str,
    *,
    task: str = "detect",
    nc: int | None = None,
    width: float = 1.0,
    depth: float = 1.0,
    pretrained: bool = True,
) -> str:
    """The text of a YOLO11 model yaml whose backbone is ``variant``."""
    spec = lookup(variant)
    task = checks.choice("task", task, TASKS)
    width = checks.multiplier("width", width)
    depth = checks.multiplier("depth", depth)
    default_nc = 1000 if task == "classify" else 80
    nc = default_nc if nc is None else checks.positive_int("nc", nc)
    pretrained = checks.boolean("pretrained", pretrained)
    flags = f" --task {task}" + (f" --nc {nc}" if nc != default_nc else "")
    flags += (f" --width {width}" if width != 1.0 else "") + (
        f" --depth {depth}" if depth != 1.0 else ""
    )
    flags += "" if pretrained else " --scratch"
    row = effzoo_row(spec.name, width=width, depth=depth, pretrained=pretrained)
    return generate(task, row, nc=nc, note=f"Written by `effzoo yaml {spec.name}{flags}`.")


def list_cfgs() -> list[str]:
    """Every model name effzoo provides (each resolves inside Ultralytics by name)."""
    return sorted(MODELS)


def is_model_name(name: str) -> bool:
    return Path(name).name in MODELS


def cfg_text(name: str) -> str:
    """The generated text of a model name in ``MODELS`` (``yolo11-effb0.yaml``)."""
    key = Path(name).name
    key = key if key.endswith(".yaml") else f"{key}.yaml"
    model = MODELS.get(key)
    if model is None:
        raise InvalidArgumentError(
            f"effzoo provides no model yaml {name!r}; it provides: {', '.join(list_cfgs())}. "
            "`effzoo yaml VARIANT` writes one for any variant."
        )
    return generate(model.task, model.row)


_OUT: list[Path] = []


def cfg_path(name: str) -> Path:
    """A file holding ``cfg_text(name)``, in a folder that lives as long as this process."""
    text = cfg_text(name)
    if not _OUT:
        _OUT.append(Path(tempfile.mkdtemp(prefix="effzoo-yolo-")))
        atexit.register(shutil.rmtree, _OUT[0], ignore_errors=True)
    path = _OUT[0] / (Path(name).name if name.endswith(".yaml") else f"{name}.yaml")
    path.write_text(text, encoding="utf-8")
    return path
