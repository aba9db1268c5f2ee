"""The candidates of ``effzoo compare``: what a name on the command line means, each one
checked (and built once) before anything trains.

A candidate is a model name Ultralytics or effzoo resolves, a model yaml file, an effzoo
row ``VARIANT[:wWIDTH][:dDEPTH][:scratch|:pretrained][:FAMILY]`` (in the scale-n head of
FAMILY, default yolo11; pretrained below full size: weights inherited), or a checkpoint
(``.pt``, fine-tuned): docs/yolo.md, "Compare backbones on your data". Nothing is
downloaded.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import io
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import _checks as checks
from ..errors import EffzooError, InvalidArgumentError, UnknownModelError, WeightsNotFoundError
from ..registry import list_models, lookup
from .checks import given, one_line, option, quiet

#: the default grid: stock YOLO11n and YOLO26n from scratch, and from Ultralytics' COCO
#: weights where those files are in its weights_dir; the Lite0 row docs/which-backbone.md
#: recommends (ImageNet start), at half width (inherited), and from scratch (the control)
DEFAULT_GRID = (
    "yolo11n.yaml",
    "yolo26n.yaml",
    "yolo11n.pt",
    "yolo26n.pt",
    "efficientnet_lite0",
    "efficientnet_lite0:w0.5",
    "efficientnet_lite0:scratch",
)


@dataclass(frozen=True)
class Candidate:
    """One model to compare. ``cfg``: what ``YOLO()`` gets; ``kind``: "stock" (an
    Ultralytics name), "effzoo" (an effzoo name or row), or "yaml" (a file); ``start``:
    what its backbone starts from (pretrained, inherited, scratch), known once built;
    ``identity``: the resolved model yaml, or a checkpoint's sha256 (what the run keys
    hash). A checkpoint (``cfg`` ends in .pt) starts from itself: ``start`` names it."""

    text: str
    name: str
    kind: str
    cfg: str = ""
    variant: str = ""
    width: float = 1.0
    depth: float = 1.0
    pretrained: bool = True
    family: str = "yolo11"
    start: str = ""
    identity: Any = None


def _known_names() -> list[str]:
    """Names to suggest from: Ultralytics' detector yamls (with scale letters), effzoo's."""
    import ultralytics

    from ..yolo.templates import list_cfgs

    names = set()
    for f in (Path(ultralytics.__file__).parent / "cfg" / "models").rglob("*.yaml"):
        names.add(f.name)
        m = re.match(r"^(\D*\d+)(.*)$", f.name)
        if m:
            names.update(f"{m.group(1)}{s}{m.group(2)}" for s in "nslmx")
    for n in list_cfgs():
        names.add(n)
        names.add(re.sub(r"^(\D*\d+)", r"\1n", n, count=1))
    return sorted(names)


def _close(text: str, pool: Sequence[str]) -> str:
    """The closest name (ties: the first in sorted order, ``efficientnet_lite0``)."""
    scored = [(difflib.SequenceMatcher(None, text, n).ratio(), n) for n in sorted(set(pool))]
    best = max((score for score, _ in scored), default=0.0)
    close = [n for score, n in scored if score == best and score >= 0.6]
    return f"did you mean {close[0]!r}? " if close else ""


#: what a row's option sets, by its first letter
_ROW_SETS = {"w": "width", "d": "depth"}
#: where an unknown candidate's message sends the user: the forms a candidate takes
_DOCS = '(docs/yolo.md, "Compare backbones on your data")'


def _row(text: str) -> Candidate:
    """``VARIANT[:wWIDTH][:dDEPTH][:scratch|:pretrained][:FAMILY]``."""
    from ..yolo.templates import FAMILIES

    variant, *opts = text.split(":")
    try:
        spec = lookup(variant)
    except EffzooError:
        pool = [*list_models(), *_known_names()]
        raise UnknownModelError(
            f"unknown candidate {text!r}: not a variant (`effzoo list`) nor a model name "
            f"(*.yaml); {_close(variant, pool)}give a model name (yolo11n.yaml), a yaml file, "
            f"or a row VARIANT[:wWIDTH][:scratch] {_DOCS}"
        ) from None
    c = Candidate(text=text, name="", kind="effzoo", variant=spec.name)
    where = f"candidate {text!r}"
    seen: dict[str, str] = {}  # what an option sets -> the option
    for opt in opts:
        scale = re.fullmatch(r"[wd]\d*\.?\d+", opt)
        sets = "start" if opt in ("scratch", "pretrained") else "family" if opt in FAMILIES else opt
        sets = _ROW_SETS[opt[0]] if scale else sets
        if sets in seen:
            keep = ":".join([variant, *(o for o in opts if o != opt)])
            checks.fail(
                f"{seen[sets]!r} and {opt!r} both set its {sets}: give one, e.g. {keep}",
                where=where,
            )
        seen[sets] = opt
        if opt in ("scratch", "pretrained"):
            c = replace(c, pretrained=opt == "pretrained")
        elif opt in FAMILIES:
            c = replace(c, family=opt)
        elif scale:
            c = replace(c, **{sets: checks.multiplier(opt[0], float(opt[1:]), where=where)})
        else:
            checks.fail(
                f"unknown option {opt!r}: {_close(opt, ['scratch', 'pretrained', *FAMILIES])}"
                f"options are wWIDTH, dDEPTH, scratch, pretrained, or a family "
                f"({', '.join(FAMILIES)}), e.g. efficientnet_lite0:w0.5:yolo26",
                where=where,
            )
    from ..yolo.templates import short_name

    name = f"{c.family}n-{short_name(c.variant)}"
    name += (f"-w{c.width:g}" if c.width != 1 else "") + (f"-d{c.depth:g}" if c.depth != 1 else "")
    return replace(c, name=name + ("" if c.pretrained else "-scratch"))


def weights_dir() -> Path:
    """Where Ultralytics keeps the checkpoints it downloads (its settings' weights_dir)."""
    from ultralytics.utils import SETTINGS

    return Path(SETTINGS["weights_dir"])


def _default_grid() -> list[str]:
    """``DEFAULT_GRID`` less the stock models the installed Ultralytics does not ship
    (YOLO26 before 8.4) and the stock checkpoints not in its weights_dir."""
    grid = []
    for text in DEFAULT_GRID:
        if text.endswith(".pt") and not (weights_dir() / text).is_file():
            continue
        if text.endswith(".yaml") and not _resolves(text):
            continue
        grid.append(text)
    return grid


def _resolves(name: str) -> bool:
    """Whether Ultralytics (with effzoo registered) finds the model yaml ``name``."""
    from ultralytics.nn.tasks import yaml_model_load

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yaml_model_load(name)
    except (FileNotFoundError, OSError):
        return False
    return True


def _comma_in_file_name(texts: str) -> None:
    """A file whose name holds a comma cannot be one of comma-separated candidates: say
    so, and how to give it, rather than refusing its pieces as unknown names."""
    pieces = texts.split(",")
    for i in range(len(pieces)):
        for j in range(i + 2, len(pieces) + 1):
            name = ",".join(pieces[i:j]).strip()
            if Path(name).expanduser().is_file():
                renamed = Path(name).name.replace(",", "_")
                checks.fail(
                    f"candidate file {name!r} has a comma in its name, and {option('models')} "
                    f"is split at commas: rename the file (e.g. {renamed}), or pass a list "
                    f"from Python: compare([{name!r}, ...])"
                )


def _model_file(text: str, path: Path) -> None:
    """A candidate yaml file: YAML, and a model's (backbone: and head:), not a data yaml."""
    import yaml

    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        why = getattr(e, "problem", None) or type(e).__name__
        checks.fail(
            f"candidate {text!r} is not valid YAML{at} ({why}): fix the file, or write a "
            "model yaml with `effzoo yaml VARIANT -o FILE`"
        )
    if isinstance(spec, dict) and {"backbone", "head"} <= spec.keys():
        return
    if isinstance(spec, dict) and {"train", "val"} & spec.keys():
        hint = f"it is a data yaml (train:, val:): give it as {given('data', text)}"
    else:
        hint = "write one with `effzoo yaml VARIANT -o FILE`, or name one (yolo11n.yaml)"
    checks.fail(f"candidate {text!r} is not a model yaml (no backbone: and head:); {hint}")


def _checkpoint(text: str) -> Candidate:
    """A ``.pt`` candidate: the file given, or a bare name in Ultralytics' weights_dir.
    A name that is in neither is refused here: Ultralytics would download it."""
    path = Path(text).expanduser()
    if not path.is_file() and path.name == text:
        path = weights_dir() / text
    if not path.is_file():
        where = f"Ultralytics' weights_dir ({weights_dir()})"
        fix = f"put {path.name} in {where} or give its path" if path.name == text else ""
        checks.fail(
            f"candidate {text!r}: no such checkpoint on disk, and compare downloads nothing "
            f"(Ultralytics would try); {fix or 'give the path of a checkpoint file'}",
            error=WeightsNotFoundError,
        )
    path = path.resolve()
    ran = path.parent.name == "weights" and path.name in ("best.pt", "last.pt")  # a run's
    run = path.parent.parent.name if ran else ""
    name = re.sub(r"[^\w.\-]+", "_", f"{run}-{path.name}" if run else path.name)
    return Candidate(text=text, name=name, kind="stock", cfg=str(path), start=name)


def parse_candidates(models: Sequence[str] | str | None) -> list[Candidate]:
    """Every candidate named, resolved or refused with a close match (nothing built)."""
    from ..yolo.patches import register
    from ..yolo.templates import is_model_name, suggest_name

    register()
    texts = _default_grid() if models is None else models
    if isinstance(texts, str):
        _comma_in_file_name(texts)
        texts = [t.strip() for t in texts.split(",")]
    if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        flag = option("models")
        checks.fail(
            f"{flag} needs one or more candidates, comma-separated; e.g. "
            f"{flag} yolo11n.yaml,efficientnet_lite0:w0.5"
        )
    out = []
    for text in (t.strip() for t in texts):
        path = Path(text).expanduser()
        if path.suffix == ".pt":
            out.append(_checkpoint(text))
            continue
        if ":" in text or path.suffix not in (".yaml", ".yml"):  # an effzoo row
            out.append(_row(text))
            continue
        if path.is_file():
            _model_file(text, path)
            stem = re.sub(r"[^\w.\-]+", "_", path.stem)
            out.append(Candidate(text=text, name=stem, kind="yaml", cfg=str(path.resolve())))
            continue
        if not _resolves(text):
            hint = suggest_name(text)
            hint = f"did you mean {hint!r}? " if hint else _close(text, _known_names())
            raise UnknownModelError(
                f"unknown candidate {text!r}: no such file nor model name; {hint}give a model "
                "name (yolo11n.yaml), a yaml or .pt file, or a row "
                f"VARIANT[:wWIDTH][:scratch][:FAMILY] {_DOCS}"
            ) from None
        kind = "effzoo" if is_model_name(re.sub(r"^(\D*\d+)[nslmx]", r"\1", text)) else "stock"
        out.append(Candidate(text=text, name=Path(text).stem, kind=kind, cfg=text))
    seen: dict[str, str] = {}
    for c in out:
        if c.name in seen:
            checks.fail(
                f"candidates {seen[c.name]!r} and {c.text!r} would share the name {c.name!r} "
                "(their run directories are named by it): list a candidate once, or rename "
                "one of the files"
            )
        seen[c.name] = c.text
    return out


def _start(model: Any, c: Candidate) -> str:
    """What the backbone starts from: "pretrained", "inherited" or "scratch"; a row that
    asked for ImageNet weights it cannot have is refused (the comparison would be wrong)."""
    prov = next((m.provenance for m in model.model if hasattr(m, "provenance")), None)
    if prov is None:
        return "scratch"
    start = getattr(prov, "start", "")
    if start == "pretrained":
        return "inherited" if prov.weights.inherited else "pretrained"
    reason = getattr(prov, "reason", "")
    if "pretrained: false" not in reason:
        named = _named(c)
        variant = c.variant or (str(named.row[3][0]) if named else "VARIANT")
        raise InvalidArgumentError(
            f"candidate {c.text!r} asks for ImageNet weights that cannot be had here "
            f"({reason}); `effzoo download {variant}` on a machine with the Hub, or compare "
            f"it from scratch: {_scratch(c)}"
        )
    return "scratch"


def _scratch(c: Candidate) -> str:
    """The candidate string that is ``c`` from random init (what to give instead)."""
    if c.variant:  # a row: its own options, the start word scratch
        opts = [o for o in c.text.split(":")[1:] if o not in ("scratch", "pretrained")]
        return ":".join([c.text.split(":")[0], *opts, "scratch"])
    named = _named(c)
    if named is None:  # a yaml file
        return (
            f"{c.text} with `pretrained: False` in its effzoo row "
            f"([VARIANT, {{pretrained: False}}])"
        )
    variant = str(named.row[3][0])
    scale = re.match(r"^\D*\d+([nslmx])?-", Path(c.text).name)
    if not named.variant and (named.family == "rtdetr" or (scale and scale[1] in (None, "n"))):
        return ":".join([variant, "scratch", *([named.family] if named.family != "yolo11" else [])])
    level = f" --{named.variant}" if named.variant else ""
    file = f"{Path(c.text).stem}-scratch.yaml"
    return (
        f"`effzoo yaml {variant} --family {named.family}{level} --scratch -o {file}`, then "
        f"{given('models', file)}"
    )


def _named(c: Candidate) -> Any:
    """The effzoo model name ``c`` gives (``templates.ModelName``), or None."""
    from ..yolo.templates import parse_name

    return parse_name(c.text) if c.kind == "effzoo" and not c.variant else None


def check_candidates(
    cands: list[Candidate], folder: Path, *, log: Callable[[str], None]
) -> list[Candidate]:
    """Write the rows' yamls into ``folder``, build every candidate once (its start and
    the yaml or checkpoint digest its runs are keyed by); any that cannot be built, or
    is not a detector, is refused here."""
    import ultralytics
    from ultralytics.nn.tasks import guess_model_task, yaml_model_load

    from ..yolo.templates import model_yaml, parse_name

    checked = []
    for c in cands:
        if c.cfg.endswith(".pt"):
            checked.append(_check_checkpoint(c, log))
            continue
        if c.kind == "effzoo" and c.variant:
            text = model_yaml(
                c.variant, width=c.width, depth=c.depth, pretrained=c.pretrained, family=c.family
            )
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{c.name}.yaml"  # the scale letter after the family: n
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")
            c = replace(c, cfg=str(path))
        with quiet():
            spec = yaml_model_load(c.cfg)
            task = guess_model_task(spec)
        if task not in ("detect", None):  # (None: Ultralytics cannot tell; the build will)
            named = parse_name(c.text)
            detect = re.sub(r"-(seg|pose|obb|cls)(?=\.ya?ml$)", "", c.text) if named else ""
            hint = f": give its detection model, {detect}" if detect and detect != c.text else ""
            checks.fail(f"candidate {c.text!r} is a {task} model; compare trains detectors{hint}")
        model = _build(c)
        spec.pop("yaml_file", None)
        c = replace(c, start=_start(model, c), identity=[spec, ultralytics.__version__])
        log(f"candidate {c.name}: {c.kind}, {c.start}")
        checked.append(c)
    return checked


def _build(c: Candidate) -> Any:
    """The candidate's model, as Ultralytics builds it; a yaml it cannot build is refused."""
    from ultralytics import YOLO

    try:
        with quiet(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = YOLO(c.cfg, task="detect").model
    except EffzooError:
        raise
    except Exception as e:  # the user's file: Ultralytics' reason, on one line
        if c.kind != "yaml":
            raise
        checks.fail(
            f"candidate {c.text!r} cannot be built by Ultralytics ({one_line(e)}): fix the "
            "file, or write one with `effzoo yaml VARIANT -o FILE`"
        )
    if type(model).__name__ not in ("DetectionModel", "RTDETRDetectionModel"):
        checks.fail(f"candidate {c.text!r} is not a detector; compare trains detectors")
    return model


def _check_checkpoint(c: Candidate, log: Callable[[str], None]) -> Candidate:
    """A checkpoint Ultralytics loads and that holds a detector; keyed by its sha256 (two
    files of one name are two candidates), effzoo's or stock by its layers."""
    import ultralytics
    from ultralytics import YOLO

    with open(c.cfg, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    try:
        with quiet(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = YOLO(c.cfg)
    except EffzooError:
        raise
    except Exception as e:  # a damaged file, or one that is no Ultralytics checkpoint
        checks.fail(
            f"candidate {c.text!r} is not a checkpoint Ultralytics loads ({_reason(e)}): "
            "give a detection checkpoint YOLO() loads (yolo11n.pt, a run's weights/best.pt)"
        )
    if model.task != "detect":
        checks.fail(
            f"candidate {c.text!r} is a {model.task} checkpoint; compare trains detectors: "
            "give a detection checkpoint (yolo11n.pt, a detection run's weights/best.pt)"
        )
    kind = "effzoo" if any(hasattr(m, "provenance") for m in model.model.model) else "stock"
    c = replace(c, kind=kind, identity=[{"checkpoint": digest}, ultralytics.__version__])
    log(f"candidate {c.name}: {c.kind} checkpoint, fine-tuned from {c.start}")
    return c


def _reason(e: BaseException) -> str:
    """Ultralytics' reason a file does not load, without its prefix and its advice."""
    return re.sub(r"^ERROR\s*", "", one_line(e).split(" Recommended fixes")[0]).rstrip(".")


def stock_note(cands: Sequence[Candidate]) -> str:
    """What the report says near its top when the stock rows all start from scratch: that
    Ultralytics' users start from its COCO weights, and how to add those rows."""
    scratch = [c.name for c in cands if c.kind == "stock" and c.start == "scratch"]
    if not scratch or any(c.cfg.endswith(".pt") and c.kind == "stock" for c in cands):
        return ""
    return (
        f"The stock rows ({', '.join(scratch)}) start from scratch (random init), not from "
        "Ultralytics' COCO-pretrained checkpoints most Ultralytics users fine-tune. To "
        "compare against those, put yolo11n.pt and yolo26n.pt in Ultralytics' weights_dir "
        "(`yolo settings` shows it; nothing is downloaded) and rerun: the default grid adds "
        "them, or name them with --models (--models yolo11n.pt,yolo26n.pt,...)."
    )


def reference(cands: Sequence[Candidate]) -> Candidate:
    """The candidate latency ratios are against: the first stock one, else the first."""
    return next((c for c in cands if c.kind == "stock"), cands[0])
