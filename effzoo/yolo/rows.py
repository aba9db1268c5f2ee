"""effzoo rows in Ultralytics model yamls: parsing, checking, building.

Three module names are understood in the first backbone row of any model yaml:

- ``EfficientNet`` (canonical): ``[variant, width, depth, pretrained, levels]``, all
  but the variant optional, positionally or as a trailing mapping
  ``{width: 1.0, depth: 1.0, pretrained: true, levels: [1, 2, 3, 4, 5], drop_path_rate: 0.0}``.
  ``width``/``depth`` may be ``scale`` to follow the yaml's ``scales:`` entry.
- ``efficient`` and ``efficientnet_v2`` (the forked-Ultralytics recipe):
  ``[variant, width, depth]``, the same parser.

The row occupies one layer index per output level (``levels``, P-numbers 1..5,
default all five), so the recipe's head that refers to 2 (P3) and 3 (P4) runs
unchanged. Output channels come from the registry, never from the yaml.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from .. import _checks as checks
from ..errors import EffzooError, WeightsNotFoundError, WeightsUnavailableError
from ..factory import create
from ..registry import lookup
from .modules import split_backbone

#: module names an effzoo row may use in a yaml (canonical first)
CANONICAL = "EfficientNet"
RECIPE_NAMES = ("efficient", "efficientnet_v2")
MODULE_NAMES = (CANONICAL, *RECIPE_NAMES)
KEYS = ("width", "depth", "pretrained", "levels", "drop_path_rate")
ALL_LEVELS = (1, 2, 3, 4, 5)


class PretrainedUnavailableWarning(UserWarning):
    """A yaml row asked for pretrained weights that cannot be had; it starts random."""


@dataclass(frozen=True)
class RowSpec:
    """One effzoo yaml row, checked."""

    variant: str
    width: float = 1.0
    depth: float = 1.0
    pretrained: bool | str = True
    levels: tuple[int, ...] = ALL_LEVELS
    drop_path_rate: float = 0.0
    where: str = ""  # "yolo11-x.yaml, backbone row 0 [...]" for messages

    @property
    def out_indices(self) -> tuple[int, ...]:
        return tuple(p - 1 for p in self.levels)


def is_effzoo_row(row: Any) -> bool:
    """Whether a yaml row ``[from, repeats, module, args]`` names an effzoo module."""
    return isinstance(row, (list, tuple)) and len(row) == 4 and row[2] in MODULE_NAMES


def _multiplier(where: str, key: str, value: Any, scale_value: float) -> float:
    """A width/depth value of a row: a positive number, or ``scale`` (the yaml's scale)."""
    return float(scale_value) if value == "scale" else checks.multiplier(key, value, where=where)


def parse_row(
    row: Sequence[Any],
    *,
    where: str,
    scale_width: float = 1.0,
    scale_depth: float = 1.0,
) -> RowSpec:
    """Check one effzoo row and return its spec; errors name ``where``."""
    frm, repeats, module, args = row
    if module not in MODULE_NAMES:
        checks.fail(f"{module!r} is not an effzoo module ({', '.join(MODULE_NAMES)})", where=where)
    if frm != -1:
        checks.fail(
            f"an effzoo row reads the image: its 'from' must be -1, got {frm!r}", where=where
        )
    if repeats != 1:
        checks.fail(
            f"an effzoo row cannot repeat: its 'repeats' must be 1, got {repeats!r}", where=where
        )
    if not isinstance(args, (list, tuple)) or not args:
        checks.fail(
            "args must be a list starting with the variant, e.g. [efficientnet_b0]", where=where
        )
    args = list(args)
    options: dict[str, Any] = {}
    if isinstance(args[-1], Mapping):
        options = dict(args.pop())
        unknown = sorted(set(options) - set(KEYS))
        if unknown:
            checks.fail(f"unknown option(s) {unknown}; options are {', '.join(KEYS)}", where=where)
    variant, *positional = args
    if len(positional) > len(KEYS) - 1:
        checks.fail(
            f"too many args ({len(args)}): [variant, width, depth, pretrained, levels] "
            "and an optional mapping of options",
            where=where,
        )
    for key, value in zip(KEYS, positional):
        if key in options:
            checks.fail(f"{key} is given twice (positionally and as an option)", where=where)
        options[key] = value
    if not isinstance(variant, str):
        checks.fail(f"the first arg must be a variant name, got {variant!r}", where=where)
    try:
        spec = lookup(variant)
    except EffzooError as e:
        checks.fail(str(e), where=where, error=type(e))
    return RowSpec(
        variant=spec.name,
        width=_multiplier(where, "width", options.get("width", 1.0), scale_width),
        depth=_multiplier(where, "depth", options.get("depth", 1.0), scale_depth),
        pretrained=checks.pretrained(options.get("pretrained", True), where=where),
        levels=checks.levels("levels", options.get("levels", ALL_LEVELS), first=1, where=where),
        drop_path_rate=checks.drop_path_rate(options.get("drop_path_rate", 0.0), where=where),
        where=where,
    )


_WARNED: set[tuple[str, str]] = set()


def _warn_once(key: tuple[str, str], message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(message, PretrainedUnavailableWarning, stacklevel=3)


def build_layers(spec: RowSpec, *, in_chans: int = 3) -> list[nn.Module]:
    """Build the backbone of a row and cut it into one layer per output level."""
    kwargs: dict[str, Any] = dict(
        out_indices=spec.out_indices,
        width_mult=spec.width,
        depth_mult=spec.depth,
        in_chans=in_chans,
        drop_path_rate=spec.drop_path_rate,
    )
    pretrained = spec.pretrained
    silence = "write `pretrained: false` in the row's options to start from random init silently"
    if pretrained is True and (spec.variant, "unavailable") in _WARNED:
        pretrained = False  # failed once in this process: do not wait on the network again
    try:
        backbone = create(spec.variant, pretrained=pretrained, **kwargs)
    except (WeightsUnavailableError, WeightsNotFoundError) as e:
        if spec.pretrained is not True:  # an explicit tag or file: the user asked for it
            checks.fail(str(e), where=spec.where, error=type(e))
        _warn_once(
            (spec.variant, "unavailable"),
            f"{spec.where}: {e}\nUntil then the backbone starts from random init ({silence}).",
        )
        backbone = create(spec.variant, pretrained=False, **kwargs)
    except EffzooError as e:
        checks.fail(str(e), where=spec.where, error=type(e))
    return split_backbone(backbone, row=spec.where)


def _scale(d: dict[str, Any]) -> tuple[float, float]:
    """(width, depth) multiples of the yaml's scale, as stock parse_model picks them."""
    scales = d.get("scales")
    if scales:
        key = d.get("scale") or next(iter(scales))
        if key in scales:
            depth, width, *_ = scales[key]
            return float(width), float(depth)
    return float(d.get("width_multiple", 1.0)), float(d.get("depth_multiple", 1.0))


def find_row(d: dict[str, Any]) -> RowSpec | None:
    """The checked effzoo row of a model dict, or None; a misplaced row raises."""
    width, depth = _scale(d)
    found: RowSpec | None = None
    name = d.get("yaml_file") or "model yaml"
    for section in ("backbone", "head"):
        for index, row in enumerate(d.get(section) or []):
            if not is_effzoo_row(row):
                continue
            where = f"{name}, {section} row {index} {list(row)}"
            if section != "backbone" or index != 0:
                checks.fail(
                    "an effzoo row must be the first row of the backbone "
                    "(it reads the image and occupies one index per output level)",
                    where=where,
                )
            found = parse_row(row, where=where, scale_width=width, scale_depth=depth)
    return found
