"""The candidates of ``effzoo compare``: what a name on the command line means, each one
checked (and built once) before anything trains.

A candidate is a model name Ultralytics or effzoo resolves (``yolo11n.yaml``,
``yolo26n-efflite0.yaml``), a model yaml file, or an effzoo row with its width, depth,
start and head: ``VARIANT[:wWIDTH][:dDEPTH][:scratch|:pretrained][:FAMILY]``, in the
scale-n head of FAMILY (default yolo11). A pretrained row below full width or depth
starts from weights inherited from the full-size variant's (weight selection).
"""

from __future__ import annotations

import contextlib
import difflib
import io
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import _checks as checks
from ..errors import EffzooError, InvalidArgumentError, UnknownModelError
from ..registry import list_models, lookup

#: the default grid: stock YOLO11n and YOLO26n, and the Lite0 row docs/which-backbone.md
#: recommends (ImageNet start), at half width (inherited), and from scratch (the control)
DEFAULT_GRID = (
    "yolo11n.yaml",
    "yolo26n.yaml",
    "efficientnet_lite0",
    "efficientnet_lite0:w0.5",
    "efficientnet_lite0:scratch",
)


@dataclass(frozen=True)
class Candidate:
    """One model to compare. ``cfg``: what ``YOLO()`` gets; ``kind``: "stock" (an
    Ultralytics name), "effzoo" (an effzoo name or row), or "yaml" (a file); ``start``:
    what its backbone starts from (pretrained, inherited, scratch), known once built;
    ``identity``: the resolved model yaml (what the run keys hash)."""

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


def _row(text: str) -> Candidate:
    """``VARIANT[:wWIDTH][:dDEPTH][:scratch|:pretrained][:FAMILY]``."""
    from ..yolo.templates import FAMILIES

    variant, *opts = text.split(":")
    try:
        spec = lookup(variant)
    except EffzooError:
        pool = [*list_models(), *_known_names()]
        raise UnknownModelError(
            f"unknown candidate {text!r}: not a backbone variant (`effzoo list`) nor a "
            f"model name (those end in .yaml); {_close(variant, pool)}candidates are model "
            "names (yolo11n.yaml), yaml files, or effzoo rows VARIANT[:wWIDTH][:scratch]"
        ) from None
    c = Candidate(text=text, name="", kind="effzoo", variant=spec.name)
    for opt in opts:
        where = f"candidate {text!r}"
        if opt in ("scratch", "pretrained"):
            c = replace(c, pretrained=opt == "pretrained")
        elif opt in FAMILIES:
            c = replace(c, family=opt)
        elif re.fullmatch(r"[wd]\d*\.?\d+", opt):
            value = checks.multiplier(opt[0], float(opt[1:]), where=where)
            c = replace(c, **{"width" if opt[0] == "w" else "depth": value})
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


def _default_grid() -> list[str]:
    """``DEFAULT_GRID`` less the stock models the installed Ultralytics does not ship
    (YOLO26 before 8.4)."""
    from ultralytics.nn.tasks import yaml_model_load

    grid = []
    for text in DEFAULT_GRID:
        if text.endswith(".yaml"):
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    yaml_model_load(text)
            except (FileNotFoundError, OSError):
                continue
        grid.append(text)
    return grid


def parse_candidates(models: Sequence[str] | str | None) -> list[Candidate]:
    """Every candidate named, resolved or refused with a close match (nothing built)."""
    from ultralytics.nn.tasks import yaml_model_load

    from ..yolo.patches import register
    from ..yolo.templates import is_model_name, suggest_name

    register()
    texts = _default_grid() if models is None else models
    if isinstance(texts, str):
        texts = [t.strip() for t in texts.split(",")]
    if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        checks.fail(
            "--models needs one or more candidates, comma-separated; e.g. "
            "--models yolo11n.yaml,efficientnet_lite0:w0.5"
        )
    out = []
    for text in (t.strip() for t in texts):
        path = Path(text).expanduser()
        if ":" in text or path.suffix not in (".yaml", ".yml"):  # an effzoo row
            out.append(_row(text))
            continue
        path = Path(text).expanduser()
        if path.is_file():
            stem = re.sub(r"[^\w.\-]+", "_", path.stem)
            out.append(Candidate(text=text, name=stem, kind="yaml", cfg=str(path.resolve())))
            continue
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                yaml_model_load(text)
        except (FileNotFoundError, OSError):
            hint = suggest_name(text)
            hint = f"did you mean {hint!r}? " if hint else _close(text, _known_names())
            raise UnknownModelError(
                f"unknown candidate {text!r}: no such file, and no model name Ultralytics or "
                f"effzoo resolves; {hint}candidates are model names (yolo11n.yaml), yaml "
                "files, or effzoo rows VARIANT[:wWIDTH][:scratch][:FAMILY]"
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
        raise InvalidArgumentError(
            f"candidate {c.text!r} asks for ImageNet weights that cannot be had here "
            f"({reason}); `effzoo download {c.variant or 'VARIANT'}` on a machine with "
            "the Hub, or compare it from scratch (VARIANT:scratch)"
        )
    return "scratch"


def check_candidates(
    cands: list[Candidate], folder: Path, *, log: Callable[[str], None]
) -> list[Candidate]:
    """Write the rows' yamls into ``folder``, build every candidate once (its start and
    the yaml its runs are keyed by); any that cannot be built is refused here."""
    import ultralytics
    from ultralytics import YOLO
    from ultralytics.nn.tasks import yaml_model_load

    from ..yolo.templates import model_yaml

    checked = []
    for c in cands:
        if c.kind == "effzoo" and c.variant:
            text = model_yaml(
                c.variant, width=c.width, depth=c.depth, pretrained=c.pretrained, family=c.family
            )
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{c.name}.yaml"  # the scale letter after the family: n
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")
            c = replace(c, cfg=str(path))
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            spec = yaml_model_load(c.cfg)
            model = YOLO(c.cfg, task="detect").model
        if type(model).__name__ != "DetectionModel":
            checks.fail(f"candidate {c.text!r} is not a detector; compare trains detectors")
        spec.pop("yaml_file", None)
        c = replace(c, start=_start(model, c), identity=[spec, ultralytics.__version__])
        log(f"candidate {c.name}: {c.kind}, {c.start}")
        checked.append(c)
    return checked


def reference(cands: Sequence[Candidate]) -> Candidate:
    """The candidate latency ratios are against: the first stock one, else the first."""
    return next((c for c in cands if c.kind == "stock"), cands[0])
