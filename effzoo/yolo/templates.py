"""Ultralytics model yamls with an effzoo backbone, made on the user's machine.

effzoo ships no Ultralytics model file (they are AGPL-3.0), only the effzoo row and
which file it goes into: a model yaml is generated from the *installed* Ultralytics' own
file of a detector family (``FAMILIES``: YOLO11, YOLO12, YOLO26 with its P2 and P6
variants, RT-DETR; each task the family ships), its stem and stages replaced by the
effzoo row at indices 0-4 (P1..P5), the same way for every family (``splice``).

``effzoo yaml VARIANT`` writes one; every model name of ``PATTERN``
(``yolo11n-effv2s.yaml``, ``yolo26s-p6-effb3.yaml``, ``yolo12m-effv2m-pose.yaml``;
``MODELS`` holds examples, and the forked recipe's ``yolo11-EfficientNetV1.yaml``)
resolves by name inside Ultralytics once ``effzoo.yolo`` is imported.
"""

from __future__ import annotations

import atexit
import difflib
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import _checks as checks
from .._version import __version__
from ..errors import InvalidArgumentError, UltralyticsContractError
from ..factory import BackboneRequest
from ..registry import lookup
from .rows import ALL_LEVELS, CANONICAL
from .splice import render, splice

TASKS = ("detect", "segment", "pose", "obb", "classify")
_SUFFIX = {"detect": "", "segment": "-seg", "pose": "-pose", "obb": "-obb", "classify": "-cls"}
#: the class count of a task's stock files (``nc``), where it is not 80
_DEFAULT_NC = {"classify": 1000}


@dataclass(frozen=True)
class Family:
    """A detector family whose files the installed Ultralytics ships."""

    name: str  # "yolo26": the prefix of effzoo's model names
    folder: str  # under ultralytics/cfg/models
    stem: str  # its file's stem: "yolo26", "rtdetr-l"
    tasks: tuple[str, ...]
    variants: tuple[str, ...]  # "" and the level variants: "p2", "p6"
    since: str  # the first Ultralytics release that ships it (checked on PyPI's wheels)

    def filename(self, task: str, variant: str = "") -> str:
        return f"{self.stem}{'-' + variant if variant else ''}{_SUFFIX[task]}.yaml"


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("yolo11", "11", "yolo11", TASKS, ("",), "8.3.0"),
        Family("yolo12", "12", "yolo12", TASKS, ("",), "8.3.78"),
        Family("yolo26", "26", "yolo26", TASKS, ("", "p2", "p6"), "8.4.0"),
        Family("rtdetr", "rt-detr", "rtdetr-l", ("detect",), ("",), "8.0.0"),
    )
}
VARIANTS = ("", "p2", "p6")


@dataclass(frozen=True)
class ModelName:
    """A model yaml name effzoo provides: an effzoo row in an Ultralytics file."""

    name: str
    task: str
    row: tuple[Any, ...]  # [from, repeats, module, args]
    family: str = "yolo11"
    variant: str = ""  # "", "p2", "p6"


def effzoo_row(backbone: str | BackboneRequest) -> tuple[Any, ...]:
    """The canonical effzoo row for a variant name (pretrained, full size) or a checked
    request (options only where they differ from a row's defaults)."""
    if isinstance(backbone, BackboneRequest):
        req = backbone
    else:
        req = BackboneRequest(spec=lookup(backbone), pretrained=True)
    opts: dict[str, Any] = {}
    if req.width_mult != 1.0 or req.depth_mult != 1.0:
        opts.update(width=req.width_mult, depth=req.depth_mult)
    if req.pretrained is False:
        opts["pretrained"] = False
    return (-1, 1, CANONICAL, [req.spec.name, *([opts] if opts else [])])


def short_name(variant: str) -> str:
    """``efficientnet_v2_s`` -> ``effv2s``, ``efficientnet_b0`` -> ``effb0``."""
    return "eff" + lookup(variant).name.removeprefix("efficientnet_").replace("_", "")


def model_name(variant: str, task: str = "detect", family: str = "yolo11", level: str = "") -> str:
    """effzoo's model name: ``yolo26-p2-effb0.yaml`` (a scale letter after the family's
    number picks the head's scale: ``yolo26n-p2-effb0.yaml``), ``rtdetr-effb0.yaml``."""
    prefix = family + (f"-{level}" if level else "")
    return f"{prefix}-{short_name(variant)}{_SUFFIX[task]}.yaml"


def _model(
    variant: str, task: str = "detect", family: str = "yolo11", level: str = ""
) -> ModelName:
    name = model_name(variant, task, family, level)
    return ModelName(name, task, effzoo_row(variant), family, level)


_DETECTORS = ("efficientnet_lite0", "efficientnet_b0", "efficientnet_v2_s")

#: every model name effzoo provides (``yolo11n-effv2s.yaml`` picks scale n of the second)
MODELS: dict[str, ModelName] = {
    m.name: m
    for m in (
        *(_model(f"efficientnet_{v}") for v in ("lite0", "b0", "b3", "v2_s", "v2_m")),
        _model("efficientnet_b0", "segment"),
        _model("efficientnet_b0", "pose"),
        _model("efficientnet_v2_s", "segment"),
        *(_model(v, family="yolo26") for v in (*_DETECTORS, "efficientnet_b3")),
        *(_model(v, family="yolo26", level="p2") for v in _DETECTORS),
        *(
            _model(v, t, "yolo26")
            for t in ("segment", "pose", "obb", "classify")
            for v in ("efficientnet_lite0", "efficientnet_b0")
        ),
        *(_model(v, family="yolo12") for v in _DETECTORS),
        _model("efficientnet_b0", "segment", "yolo12"),
        *(_model(v, family="rtdetr") for v in _DETECTORS),
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


#: examples of YOLO26's P6 variant (the stock rows that build P6/64 from P5 stay after
#: the effzoo row; tests/test_yolo_families.py); every other P6 name resolves as well
P6_NAMES: dict[str, ModelName] = {
    m.name: m for m in (_model(v, family="yolo26", level="p6") for v in _DETECTORS)
}


def ultralytics_file(task: str, family: str = "yolo11", variant: str = "") -> Path:
    """The installed Ultralytics' model file of ``family`` for ``task`` (and a level
    variant such as ``p2``); one error naming the releases that ship it when absent."""
    import ultralytics

    fam = FAMILIES[checks.choice("family", family, tuple(FAMILIES))]
    task = checks.choice("task", task, fam.tasks)
    variant = check_level(fam.name, variant)
    if variant and task != "detect":
        raise InvalidArgumentError(
            f"{fam.name}'s {variant.upper()} variant is a detection model; "
            f"use --task detect with --{variant}"
        )
    name = fam.filename(task, variant)
    path = Path(ultralytics.__file__).parent / "cfg" / "models" / fam.folder / name
    if not path.is_file():
        raise UltralyticsContractError(
            f"the installed Ultralytics {ultralytics.__version__} has no {name} (looked in "
            f"{path.parent}); effzoo makes its {fam.name} yamls from it, and Ultralytics "
            f"ships {fam.name.upper()} from {fam.since} on: "
            f'pip install -U "ultralytics>={fam.since}"'
        )
    return path


def check_level(family: str, level: Any) -> str:
    """A level variant (``"p2"``, ``"p6"``, ``""`` for none) the family has."""
    fam = FAMILIES[family]
    if not isinstance(level, str) or level not in fam.variants:
        have = [f"--{v}" for v in fam.variants if v]
        checks.fail(
            f"{fam.name} has no {level!r} variant"
            + (f"; it has {', '.join(have)}" if have else "; only yolo26 has --p2 and --p6")
        )
    return level


def generate(
    task: str,
    row: tuple[Any, ...],
    *,
    nc: int | None = None,
    note: str = "",
    family: str = "yolo11",
    variant: str = "",
) -> str:
    """The model yaml for ``row`` in the installed Ultralytics' ``family`` file for ``task``."""
    import ultralytics
    import yaml

    path = ultralytics_file(task, family, variant)
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


@dataclass(frozen=True)
class YamlRequest:
    """A checked ``effzoo yaml`` / ``model_yaml`` call: the backbone and the detector."""

    backbone: BackboneRequest
    family: str = "yolo11"
    task: str = "detect"
    nc: int = 80
    level: str = ""  # "", "p2", "p6"


def yaml_request(
    variant: str,
    *,
    task: str = "detect",
    nc: int | None = None,
    width: float = 1.0,
    depth: float = 1.0,
    pretrained: bool = True,
    family: str = "yolo11",
    level: str = "",
    flag: str = "",
) -> YamlRequest:
    """Check a model yaml's options once; messages name them ``flag + name`` (``"--"``
    on the command line: ``--width``)."""
    spec = lookup(variant)
    family = checks.choice(f"{flag}family", family, tuple(FAMILIES))
    where = f"--family {family}" if flag else ""
    task = checks.choice(f"{flag}task", task, FAMILIES[family].tasks, where=where)
    level = check_level(family, level)
    backbone = BackboneRequest(  # what the row it writes parses to: every level P1..P5
        spec=spec,
        out_indices=tuple(p - 1 for p in ALL_LEVELS),
        width_mult=checks.multiplier(f"{flag}width", width),
        depth_mult=checks.multiplier(f"{flag}depth", depth),
        pretrained=checks.boolean("pretrained", pretrained),
    )
    if nc is None:
        nc = _DEFAULT_NC.get(task, 80)
    else:
        nc = checks.positive_int(f"{flag}nc", nc, most=checks.MAX_CLASSES)
    return YamlRequest(backbone, family, task, nc, level)


def yaml_text(req: YamlRequest) -> str:
    """The text of the model yaml a checked request asks for."""
    backbone = req.backbone
    flags = "" if req.family == "yolo11" else f" --family {req.family}"
    flags += (f" --{req.level}" if req.level else "") + f" --task {req.task}"
    flags += f" --nc {req.nc}" if req.nc != _DEFAULT_NC.get(req.task, 80) else ""
    flags += f" --width {backbone.width_mult}" if backbone.width_mult != 1.0 else ""
    flags += f" --depth {backbone.depth_mult}" if backbone.depth_mult != 1.0 else ""
    flags += "" if backbone.pretrained else " --scratch"
    note = f"Written by `effzoo yaml {backbone.spec.name}{flags}`."
    row = effzoo_row(backbone)
    return generate(req.task, row, nc=req.nc, note=note, family=req.family, variant=req.level)


def model_yaml(
    variant: str,
    *,
    task: str = "detect",
    nc: int | None = None,
    width: float = 1.0,
    depth: float = 1.0,
    pretrained: bool = True,
    family: str = "yolo11",
    level: str = "",
) -> str:
    """The text of a model yaml of ``family`` (and level variant ``p2``/``p6``) whose
    backbone is ``variant``."""
    return yaml_text(
        yaml_request(
            variant,
            task=task,
            nc=nc,
            width=width,
            depth=depth,
            pretrained=pretrained,
            family=family,
            level=level,
        )
    )


#: the pattern every effzoo model name follows (docs/yolo.md)
PATTERN = "<family>[scale][-p2|-p6]-<backbone>[-seg|-pose|-obb|-cls].yaml"
_TASK_OF = {suffix: task for task, suffix in _SUFFIX.items()}
#: a name of the pattern, any spelling of its parts (checked against what exists after)
_NAME = re.compile(
    r"(?P<family>[a-z]+?\d*)(?P<scale>[nslmx]?)(?:-(?P<level>p\d+))?"
    r"-(?P<backbone>eff[a-z0-9]+)(?P<task>-[a-z]+)?\.yaml"
)


def list_cfgs() -> list[str]:
    """Examples of effzoo's model names (``MODELS``); every name of ``PATTERN`` resolves
    too (any family, scale, level variant, backbone of ``effzoo list`` and task)."""
    return sorted(MODELS)


def backbones() -> dict[str, str]:
    """The backbone part of a model name -> its variant: ``effb0`` -> ``efficientnet_b0``."""
    from ..registry import list_models

    return {short_name(v): v for v in list_models()}


def parse_name(name: str) -> ModelName | None:
    """The model a name of the pattern asks for (a scale letter is read by Ultralytics
    and ignored here), or None when it does not parse or names no backbone. A family,
    level variant or task the family does not have is checked by ``cfg_text``."""
    key = Path(str(name)).name
    if key in MODELS:
        return MODELS[key]
    m = _NAME.fullmatch(key)
    variant = backbones().get(m["backbone"]) if m else None
    if m is None or variant is None or (m["task"] or "") not in _TASK_OF:
        return None
    if m["family"] not in FAMILIES or (m["family"] == "rtdetr" and m["scale"]):
        return None
    level, task = m["level"] or "", _TASK_OF[m["task"] or ""]
    return ModelName(key, task, effzoo_row(variant), m["family"], level)


def _closest(word: str, choices: list[str] | tuple[str, ...]) -> str | None:
    """The choice closest to ``word`` (``word`` itself when it is one), else None."""
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return found[0] if found else None


def _repaired(lower: str) -> str | None:
    """A name of the pattern with its family, level, backbone or task spelt wrong, spelt
    right (``yolo11n-effb9.yaml`` -> ``yolo11n-effb8.yaml``), else None."""
    m = _NAME.fullmatch(lower)
    if m is None:
        return None
    family = _closest(m["family"], tuple(FAMILIES))  # itself where spelt right
    backbone = _closest(m["backbone"], list(backbones()))
    task = _task_suffix(m["task"] or "")
    level = m["level"] or ""
    level = level if level in VARIANTS else _closest(level, [v for v in VARIANTS if v])
    if None in (family, backbone, task, level):
        return None
    scale = "" if family == "rtdetr" else m["scale"]
    return f"{family}{scale}{'-' + level if level else ''}-{backbone}{task}.yaml"


#: a task as people write it -> its suffix (a ``-det`` model is a detection model)
_TASK_WORDS = {
    "": "", "det": "", "detect": "", "detection": "", "seg": "-seg", "segment": "-seg",
    "segmentation": "-seg", "pose": "-pose", "obb": "-obb", "cls": "-cls", "classify": "-cls",
}  # fmt: skip


def _task_suffix(word: str) -> str | None:
    """The suffix of the task ``word`` names (``-det``, ``pose2``), or None."""
    word = word.strip("-_")
    if word.rstrip("0123456789") in _TASK_WORDS:
        return _TASK_WORDS[word.rstrip("0123456789")]
    close = _closest(word, [w for w in _TASK_WORDS if w])
    return _TASK_WORDS[close] if close else None


def _backbone_of(words: list[str]) -> tuple[str, int] | None:
    """(the backbone part, how many words it spans) of words that start with a spelling
    of one (``effb0``, ``eff-b0``, ``efficientnet_b0``, ``eflite0``), else None."""
    known = backbones()
    for n in (1, 2, 3):
        joined = "".join(words[:n])
        rest = re.sub(r"^(efficientnet|effnet|eff|ef)", "", joined)
        if rest != joined and "eff" + rest in known:
            return "eff" + rest, n
    first = re.sub(r"^(efficientnet|effnet|eff|ef)", "eff", words[0])
    close = difflib.get_close_matches(first, list(known), n=1, cutoff=0.8)
    return (close[0], 1) if close and first.startswith("eff") else None


def _mentioned(lower: str) -> str | None:
    """The model name meant by a name that names an effzoo backbone but does not follow
    the pattern (``yolo11n_effb0``, ``yolo11n-efficientnet_b0``, ``rtdetr-l-effb0``,
    ``-effb0``, ``yolo11n-effb0-det``), keeping its family, scale and task; else None."""
    words = re.split(r"[-_]", lower.removesuffix(".yaml"))
    at = next((i for i, w in enumerate(words) if w.startswith("ef")), None)
    found = None if at is None else _backbone_of(words[at:])
    if found is None:
        return None
    backbone, span = found
    head = [w for w in words[:at] if w]
    task = _task_suffix("".join(words[at + span :]))
    m = re.fullmatch(r"([a-z]+\d*)([a-z]*)", head[0]) if head else None
    family = m[1] if m else "yolo11"
    family = _closest(family, tuple(FAMILIES)) or "yolo11"
    scales = [m[2]] if m and m[2] else []
    scales += [w for w in head[1:] if len(w) == 1]
    scale = next((s[0] for s in scales if s[0] in "nslmx"), "n" if scales else "")
    level = next((w for w in head[1:] if w in VARIANTS), "")
    scale = "" if family == "rtdetr" else scale
    name = f"{family}{scale}{'-' + level if level else ''}-{backbone}{task or ''}.yaml"
    return name if parse_name(name) else None


_SCALE = re.compile(r"^(\D*\d+)([nslmx])(?=-)")


def suggest_name(name: str) -> str | None:
    """The effzoo model name a mistyped one means (``.yaml`` missing, ``.yml``, another
    case: ``YOLO11n-efflite0.yml`` -> ``yolo11n-efflite0.yaml``; a part of the pattern
    misspelt: ``yolo11n-effb9.yaml`` -> ``yolo11n-effb8.yaml``), else None."""
    base = Path(str(name)).name
    if len(base) > 200:
        return None
    stem = re.sub(r"\.ya?ml$", "", base, flags=re.IGNORECASE)
    lower = stem.lower() + ".yaml"
    known = {n.lower(): n for n in MODELS}  # the forked recipe's names keep their case
    scale = _SCALE.match(lower)
    unscaled = _SCALE.sub(r"\1", lower) if scale else lower
    real = known.get(lower) or known.get(unscaled)
    if real is not None and scale and real.lower() == unscaled:  # the scale letter back
        real = re.sub(r"^(\D*\d+)", lambda m: m.group(1) + scale.group(2), real, count=1)
    if real is None:
        real = lower if parse_name(lower) else _repaired(lower) or _mentioned(lower)
    return None if real is None or real == base else real


def is_model_name(name: str) -> bool:
    """Whether ``name`` is one of effzoo's model names: any name of the pattern whose
    backbone exists (``cfg_text`` says when its family lacks the level or task)."""
    return parse_name(name) is not None


def cfg_text(name: str) -> str:
    """The generated text of an effzoo model name (``yolo11-effb0.yaml``,
    ``yolo26s-p6-effv2m.yaml``: any name of ``PATTERN``)."""
    key = Path(str(name)).name
    key = key if key.lower().endswith((".yaml", ".yml")) else f"{key}.yaml"
    model = parse_name(key)
    if model is None:
        meant = suggest_name(key)
        raise InvalidArgumentError(
            f"{name!r} is not an effzoo model name ({PATTERN})"
            + (f"; did you mean {meant!r}?" if meant else ".")
            + " Fix: `effzoo yaml VARIANT` writes one for any variant "
            + '(docs/yolo.md, "Every family")'
        )
    fam = FAMILIES[model.family]
    if model.task not in fam.tasks:
        checks.fail(f"{key}: {fam.name} has no {model.task} model (it has: {', '.join(fam.tasks)})")
    if model.variant and model.variant not in fam.variants:
        have = [f"{fam.name}-{v}" for v in fam.variants if v]
        checks.fail(
            f"{key}: {fam.name} has no {model.variant.upper()} variant"
            + (f"; it has {', '.join(have)}" if have else "; only yolo26 has -p2 and -p6")
        )
    if model.variant and model.task != "detect":
        detect = key.replace(_SUFFIX[model.task] + ".", ".", 1)
        checks.fail(
            f"{key}: {fam.name}'s {model.variant.upper()} variant is a detection model "
            f"(Ultralytics ships no {fam.filename(model.task, model.variant)}); use {detect}"
        )
    return generate(model.task, model.row, family=model.family, variant=model.variant)


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
