"""effzoo rows in Ultralytics model yamls: parsing, checking, building.

The first backbone row of any model yaml may be an effzoo row (docs/yolo.md gives the
syntax): ``EfficientNet`` (canonical: ``[variant, width, depth, pretrained, levels]``, all
but the variant optional, positionally or as a trailing mapping that may also hold
``drop_path_rate``; ``width``/``depth`` may be ``scale``, the yaml's ``scales:`` entry),
or the forked-Ultralytics recipe's ``efficient`` and ``efficientnet_v2``
(``[variant, width, depth]``, the same parser). The row occupies one layer index per
output level (``levels``, P-numbers 1..5, default all five), so the recipe's head that
refers to 2 (P3) and 3 (P4) runs unchanged. Output channels come from the registry,
never from the yaml.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from torch import nn

from .. import _checks as checks
from ..errors import EffzooError, WeightsNotFoundError, WeightsUnavailableError
from ..factory import BackboneRequest, build, count_params, model_info
from ..registry import lookup
from .modules import CheckpointStart, Provenance, split_backbone

#: module names an effzoo row may use in a yaml (canonical first)
CANONICAL = "EfficientNet"
RECIPE_NAMES = ("efficient", "efficientnet_v2")
MODULE_NAMES = (CANONICAL, *RECIPE_NAMES)
KEYS = ("width", "depth", "pretrained", "levels", "drop_path_rate")
ALL_LEVELS = (1, 2, 3, 4, 5)


class PretrainedUnavailableWarning(UserWarning):
    """A yaml row asked for pretrained weights that cannot be had; it starts random."""


class YamlRepairedWarning(UserWarning):
    """A model yaml with an effzoo row was repaired at build (see ``repair_scales``)."""


#: the scale letters Ultralytics' YOLO11 files use
SCALE_LETTERS = ("n", "s", "m", "l", "x")
FULL_WIDTH_COMMA = "\uff0c"


@dataclass(frozen=True)
class RowSpec:
    """One effzoo yaml row, checked: the backbone it asks for and where it is."""

    request: BackboneRequest  # checked once here; the build consumes it (in_chans set then)
    levels: tuple[int, ...] = ALL_LEVELS  # P-levels 1..5, one layer index each
    where: str = ""  # "yolo11-x.yaml, backbone row 0 [...]" for messages
    place: str = ""  # "yolo11-x.yaml, backbone row 0": the same without the row

    @property
    def variant(self) -> str:
        return self.request.spec.name

    @property
    def width(self) -> float:
        return self.request.width_mult

    @property
    def depth(self) -> float:
        return self.request.depth_mult

    @property
    def pretrained(self) -> bool | str | os.PathLike[str]:
        return self.request.pretrained

    @property
    def drop_path_rate(self) -> float:
        return self.request.drop_path_rate

    @property
    def out_indices(self) -> tuple[int, ...]:
        return self.request.out_indices


def is_effzoo_row(row: Any) -> bool:
    """Whether a yaml row ``[from, repeats, module, args]`` names an effzoo module."""
    return isinstance(row, (list, tuple)) and len(row) == 4 and row[2] in MODULE_NAMES


#: characters that do not show (zero-width spaces and joiners, word joiner, BOM, soft hyphen)
_INVISIBLE = re.compile("[\u200b-\u200f\u2060\ufeff\u00ad]")
#: spellings, lower-cased without "-", "_" and spaces, that mean the canonical module
_CANONICAL_FOLDS = {"efficientnet", "efficientnetv1", "efficientnetv2", "efficientnetlite"}


def meant_module(module: Any) -> str | None:
    """The effzoo module name a row's misspelt module name means (a case or spelling
    variant, or the name with invisible characters in it), else None."""
    if not isinstance(module, str) or module in MODULE_NAMES or len(module) > 64:
        return None
    plain = _INVISIBLE.sub("", module).strip()
    if plain in MODULE_NAMES:
        return plain
    lower = plain.lower()
    if lower in RECIPE_NAMES:
        return lower
    folded = re.sub(r"[-_\s]", "", lower)
    if folded in _CANONICAL_FOLDS:
        return CANONICAL
    close = difflib.get_close_matches(plain, MODULE_NAMES, n=1, cutoff=0.85)
    return close[0] if close else None


def resolves_in_ultralytics(module: Any) -> bool:
    """Whether stock ``parse_model`` resolves the module name of a row as it does: ``nn.X``
    from ``torch.nn``, ``torchvision.ops.X``, any other name from ``ultralytics.nn.tasks``'
    globals (where a user may register a module of their own)."""
    if not isinstance(module, str):
        return False
    from ultralytics.nn import tasks

    if module.startswith("nn."):
        return hasattr(nn, module[3:])
    if module.startswith("torchvision.ops."):
        import torchvision

        return hasattr(torchvision.ops, module[16:])
    return module in vars(tasks)


def check_module_names(d: Mapping[str, Any], name: str) -> None:
    """One effzoo error for a row whose module is a misspelt effzoo module, or an effzoo
    row with other than four fields (stock Ultralytics says ``KeyError: 'Efficientnet'``
    or ``not enough values to unpack``). A name that Ultralytics resolves (a user's own
    module in ``tasks``, ``nn.X``) is never taken for a misspelling: stock builds it."""
    for section in ("backbone", "head"):
        rows = d.get(section)
        for index, row in enumerate(rows if isinstance(rows, list) else []):
            if not isinstance(row, (list, tuple)) or len(row) < 3:
                continue
            module = row[2]
            where = f"{name}, {section} row {index}"
            meant = meant_module(module)
            if meant is not None and not resolves_in_ultralytics(module):
                invisible = _INVISIBLE.search(module)
                shown = ascii(module) if invisible else checks.shown(module)
                hidden = " (it holds invisible characters)" if invisible else ""
                checks.fail(
                    f"unknown module {shown}{hidden}; did you mean {meant!r}? effzoo's modules "
                    f"are {', '.join(MODULE_NAMES)} (the variant goes in the args, e.g. "
                    f"[-1, 1, {CANONICAL}, [efficientnet_v2_s]])",
                    where=where,
                )
            if module in MODULE_NAMES and len(row) != 4:
                checks.fail(
                    f"an effzoo row has four fields, [from, repeats, module, args]; this one has "
                    f"{len(row)}: write it as [-1, 1, {module}, [efficientnet_b0]]",
                    where=where,
                )


def _multiplier(where: str, key: str, value: Any, scale_value: float) -> float:
    """A width/depth value of a row: a positive number, or ``scale`` (the yaml's scale)."""
    if isinstance(value, str) and value == "scale":
        value = scale_value
    return checks.multiplier(key, value, where=where)


def _refuse_full_width_commas(args: Any, where: str) -> None:
    """A row copied from a page written with a Chinese input method (``0.25`` U+FF0C ``0.5``)."""
    values = [args] if not isinstance(args, (list, tuple)) else list(args)
    values += [v for a in values if isinstance(a, Mapping) for v in a.values()]
    bad = next((v for v in values if isinstance(v, str) and FULL_WIDTH_COMMA in v), None)
    if bad is not None:
        fixed = bad.replace(FULL_WIDTH_COMMA, ", ")
        checks.fail(
            f"{checks.shown(bad)} contains a full-width comma '{FULL_WIDTH_COMMA}' (U+FF0C), "
            f"so YAML reads it as one string; write it with an ASCII comma: {fixed}",
            where=where,
        )


def parse_row(
    row: Sequence[Any],
    *,
    where: str,
    scale_width: float = 1.0,
    scale_depth: float = 1.0,
) -> RowSpec:
    """Check one effzoo row and return its spec; errors name ``where``."""

    def fail(message: str) -> NoReturn:
        checks.fail(message, where=where)

    frm, repeats, module, args = row
    _refuse_full_width_commas(args, where)
    if module not in MODULE_NAMES:
        fail(f"{checks.shown(module)} is not an effzoo module ({', '.join(MODULE_NAMES)})")
    if frm != -1:
        fail(f"an effzoo row reads the image: its 'from' must be -1, got {checks.shown(frm)}")
    if repeats != 1:
        fail(f"an effzoo row cannot repeat: its 'repeats' must be 1, got {checks.shown(repeats)}")
    if not isinstance(args, (list, tuple)) or not args:
        fail("args must be a list starting with the variant, e.g. [efficientnet_b0]")
    args = list(args)
    options: dict[str, Any] = {}
    if isinstance(args[-1], Mapping):
        options = dict(args.pop())
        unknown = sorted(map(checks.shown, set(options) - set(KEYS)))
        if unknown:
            fail(f"unknown option(s) {unknown}; options are {', '.join(KEYS)}")
    if not args:
        fail("args must start with the variant, e.g. [efficientnet_b0, {width: 0.5}]")
    variant, *positional = args
    if len(positional) > len(KEYS) - 1:
        fail(
            f"too many args ({len(args)}): [variant, width, depth, pretrained, levels] "
            "and an optional mapping of options"
        )
    for key, value in zip(KEYS, positional):
        if key in options:
            fail(f"{key} is given twice (positionally and as an option)")
        options[key] = value
    if not isinstance(variant, str):
        fail(f"the first arg must be a variant name, got {checks.shown(variant)}")
    try:
        spec = lookup(variant)
    except EffzooError as e:
        checks.fail(str(e), where=where, error=type(e))
    width = _multiplier(where, "width", options.get("width", 1.0), scale_width)
    depth = _multiplier(where, "depth", options.get("depth", 1.0), scale_depth)
    pretrained = checks.pretrained(options.get("pretrained", True), where=where, none_ok=False)
    levels = checks.levels("levels", options.get("levels", ALL_LEVELS), first=1, where=where)
    request = BackboneRequest(
        spec=spec,
        out_indices=tuple(p - 1 for p in levels),
        width_mult=width,
        depth_mult=depth,
        pretrained=pretrained,  # type: ignore[arg-type]  # never None: none_ok=False
        drop_path_rate=checks.drop_path_rate(options.get("drop_path_rate", 0.0), where=where),
    )
    return RowSpec(request=request, levels=levels, where=where)


#: variant -> why its pretrained weights could not be had in this process (warned once)
_WARNED: dict[str, str] = {}


def width_note(spec: RowSpec, layers: Sequence[nn.Module]) -> str:
    """One line for a row narrower than its variant that inherited ImageNet weights:
    what it keeps of them, and what to consider instead ("" for any other row)."""
    weights = getattr(layers[0], "backbone", None)
    weights = getattr(weights, "weights", None)
    if spec.width >= 1.0 or weights is None or not getattr(weights, "inherited", False):
        return ""
    n_full = model_info(spec.variant).params  # counted once per variant, on the meta device
    n_kept = sum(count_params(layer) for layer in layers)
    return (
        f"width x{spec.width:g} keeps {n_kept / 1e6:.2f}M of the {n_full / 1e6:.2f}M "
        f"ImageNet-trained parameters of {spec.variant} (a channel subset, never trained at "
        f"this width); {WIDTH_ADVICE}"
    )


#: what the measurements in docs/which-backbone.md support for width-shrunk pretrained rows
WIDTH_ADVICE = (
    "a full-width pretrained backbone (width 1.0; the yaml's scale still sizes the head) "
    "learned faster and scored higher in docs/which-backbone.md"
)


def build_layers(
    spec: RowSpec, *, in_chans: int = 3, checkpoint: CheckpointStart | None = None
) -> list[nn.Module]:
    """Build the backbone of a row and cut it into one layer per output level; the first
    layer's ``provenance`` says what it starts from (with ``checkpoint``: that checkpoint,
    whose weights Ultralytics transfers after the build; nothing is fetched)."""
    in_chans = checks.positive_int("ch", in_chans, most=checks.MAX_IN_CHANS, where=spec.where)
    request = dataclasses.replace(spec.request, in_chans=in_chans)
    size = spec.variant
    if (spec.width, spec.depth) != (1, 1):
        size += f" width x{spec.width:g} depth x{spec.depth:g}"
    provenance = Provenance(size, "random", reason="`pretrained: false` in the row")
    if checkpoint is not None:
        request = dataclasses.replace(request, pretrained=False)
        provenance = Provenance(
            size, "checkpoint", checkpoint=checkpoint.file, earlier=checkpoint.start
        )
    elif request.pretrained is True and spec.variant in _WARNED:
        # failed once in this process: do not wait on the network again
        request = dataclasses.replace(request, pretrained=False)
        provenance = Provenance(size, "random", reason=_unavailable(_WARNED[spec.variant]))
    try:
        backbone = build(request)
    except (WeightsUnavailableError, WeightsNotFoundError) as e:
        if spec.pretrained is not True:  # an explicit tag or file: the user asked for it
            checks.fail(str(e), where=spec.where, error=type(e))
        reason = e.reason or type(e).__name__
        provenance = Provenance(size, "random", reason=_unavailable(reason))
        if spec.variant not in _WARNED:
            _WARNED[spec.variant] = reason
            warnings.warn(
                f"{spec.where}: {e}\nUntil then the backbone starts from random init (write "
                "`pretrained: false` in the row's options to start from random init silently).",
                PretrainedUnavailableWarning,
                stacklevel=2,
            )
        backbone = build(dataclasses.replace(request, pretrained=False))
    except EffzooError as e:
        checks.fail(str(e), where=spec.where, error=type(e))
    if backbone.weights is not None:
        provenance = Provenance(size, "pretrained", weights=backbone.weights)
    layers = split_backbone(backbone, row=spec.where)
    layers[0].provenance = provenance
    return layers


def _unavailable(reason: str) -> str:
    return f"pretrained weights unavailable ({reason})"


def _scale(d: dict[str, Any], name: str) -> tuple[float, float]:
    """(width, depth) multiples of the yaml's scale, as stock parse_model picks them."""
    scales = d.get("scales")
    if scales is not None and not isinstance(scales, Mapping):
        checks.fail(
            f"scales must be a mapping of scale letters to [depth, width, max_channels], "
            f"e.g. n: [0.50, 0.25, 1024]; got {checks.shown(scales)}",
            where=f"{name}, scales",
        )
    if scales:
        key = d.get("scale") or next(iter(scales))
        if key in scales:
            entry = scales[key]
            where = f"{name}, scales entry {key}"
            ok = isinstance(entry, (list, tuple)) and len(entry) == 3  # stock unpacks three
            if not ok or not all(checks.is_number(v) for v in entry):
                checks.fail(
                    f"must be [depth, width, max_channels] numbers, e.g. n: [0.50, 0.25, 1024]; "
                    f"got {checks.shown(entry)}",
                    where=where,
                )
            depth = checks.multiplier("depth", entry[0], where=where)  # the head's too
            width = checks.multiplier("width", entry[1], where=where)
            checks.positive_int("max_channels", entry[2], where=where)
            return width, depth
    width = checks.multiplier("width_multiple", d.get("width_multiple", 1.0), where=name)
    return width, checks.multiplier("depth_multiple", d.get("depth_multiple", 1.0), where=name)


def check_references(d: dict[str, Any], spec: RowSpec, name: str) -> None:
    """Every later row reads layers that exist once the row occupies ``len(levels)`` indices
    (stock Ultralytics fails with a bare IndexError otherwise)."""
    rows = [("backbone", i, r) for i, r in enumerate(d.get("backbone") or [])][1:]
    rows += [("head", i, r) for i, r in enumerate(d.get("head") or [])]
    for index, (section, i, row) in enumerate(rows, start=len(spec.levels)):
        froms = row[0] if isinstance(row, (list, tuple)) and row else None
        for f in froms if isinstance(froms, list) else [froms]:
            if checks.is_int(f) and (f >= index or index + f < 0):
                hint = ""
                if spec.levels != ALL_LEVELS:
                    hint = (
                        f"; the effzoo row's levels {list(spec.levels)} occupy indices "
                        f"0-{len(spec.levels) - 1}, so a head written for all five levels "
                        "(P1..P5 at 0-4) needs the default levels [1, 2, 3, 4, 5]"
                    )
                checks.fail(
                    f"reads layer {f}, which does not exist before it (it is layer {index}){hint}",
                    where=f"{name}, {section} row {i} {list(row)}",
                )


def repair_scales(d: dict[str, Any], name: str) -> list[str]:
    """Put back a ``scales:`` block that lost its indentation, in place; returns the letters.

    Copied from a web page, ``scales:`` followed by unindented ``n: [...]`` lines parses
    as ``scales: null`` with ``n``, ``s``, ... as top-level keys, and Ultralytics then
    applies no scale at all (a full-width head: 25.4M parameters instead of 1.7M at
    scale n), without a word. The block is rebuilt and a ``YamlRepairedWarning`` (and a
    line in Ultralytics' log) says so.
    """
    stray = [k for k in SCALE_LETTERS if isinstance(d.get(k), list)]
    if "scales" not in d or d.get("scales") or not stray:
        return []
    d["scales"] = {k: d.pop(k) for k in stray}
    message = (
        f"{name}: its 'scales:' block lost its indentation (the {', '.join(stray)} lines); "
        "effzoo read them as the scales. Fix: indent them by two spaces under 'scales:' "
        '(docs/migration.md, "A yaml copied from a web page")'
    )
    warnings.warn(message, YamlRepairedWarning, stacklevel=4)
    from ultralytics.utils import LOGGER

    LOGGER.warning(f"effzoo: {message}")
    return stray


def find_row(d: dict[str, Any]) -> RowSpec | None:
    """The checked effzoo row of a model dict, or None; a misplaced row raises."""
    name = d.get("yaml_file") or "model yaml"
    check_module_names(d, name)
    found: tuple[str, str, Sequence[Any]] | None = None
    for section in ("backbone", "head"):
        for index, row in enumerate(d.get(section) or []):
            if not is_effzoo_row(row):
                continue
            place = f"{name}, {section} row {index}"
            where = f"{place} {checks.shown(list(row))}"
            if section != "backbone" or index != 0:
                checks.fail(
                    "an effzoo row must be the first row of the backbone "
                    "(it reads the image and occupies one index per output level)",
                    where=where,
                )
            found = (where, place, row)
    if found is None:
        return None
    repair_scales(d, name)
    if "nc" in d:  # the head's class count: the bound `effzoo yaml --nc` has
        checks.positive_int("nc", d["nc"], where=name, most=checks.MAX_CLASSES)
    width, depth = _scale(d, name)
    where, place, row = found
    spec = parse_row(row, where=where, scale_width=width, scale_depth=depth)
    spec = dataclasses.replace(spec, place=place)
    check_references(d, spec, name)
    return spec
