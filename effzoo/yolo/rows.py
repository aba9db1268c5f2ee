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

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..errors import (
    EffzooError,
    InvalidArgumentError,
    WeightsNotFoundError,
    WeightsUnavailableError,
)
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


def _fail(where: str, message: str, error: type[EffzooError] = InvalidArgumentError) -> EffzooError:
    return error(f"{where}: {message}")


def _multiplier(where: str, key: str, value: Any, scale_value: float) -> float:
    if value == "scale":
        return float(scale_value)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:
        raise _fail(
            where,
            f"{key} must be a positive number (or 'scale' to follow the yaml's scales), "
            f"got {value!r}; 1.0 keeps the variant's own size",
        )
    return float(value)


def _levels(where: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    ok = isinstance(value, (list, tuple)) and value
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    if not ok or not all(1 <= v <= 5 for v in value):
        raise _fail(
            where, f"levels must be P-levels 1..5 (strides 2..32), e.g. [3, 4, 5]; got {value!r}"
        )
    if list(value) != sorted(set(value)):
        raise _fail(where, f"levels must be ascending without repeats, e.g. {sorted(set(value))}")
    return tuple(value)


def _pretrained(where: str, value: Any) -> bool | str:
    if isinstance(value, (bool, str)) and value != "":
        return value
    raise _fail(
        where, f"pretrained must be true, false, a weights tag or a file path; got {value!r}"
    )


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
        raise _fail(where, f"{module!r} is not an effzoo module ({', '.join(MODULE_NAMES)})")
    if frm != -1:
        raise _fail(where, f"an effzoo row reads the image: its 'from' must be -1, got {frm!r}")
    if repeats != 1:
        raise _fail(where, f"an effzoo row cannot repeat: its 'repeats' must be 1, got {repeats!r}")
    if not isinstance(args, (list, tuple)) or not args:
        raise _fail(where, "args must be a list starting with the variant, e.g. [efficientnet_b0]")
    args = list(args)
    options: dict[str, Any] = {}
    if isinstance(args[-1], Mapping):
        options = dict(args.pop())
        unknown = sorted(set(options) - set(KEYS))
        if unknown:
            raise _fail(where, f"unknown option(s) {unknown}; options are {', '.join(KEYS)}")
    variant, *positional = args
    if len(positional) > len(KEYS) - 1:
        raise _fail(
            where,
            f"too many args ({len(args)}): [variant, width, depth, pretrained, levels] "
            "and an optional mapping of options",
        )
    for key, value in zip(KEYS, positional):
        if key in options:
            raise _fail(where, f"{key} is given twice (positionally and as an option)")
        options[key] = value
    if not isinstance(variant, str):
        raise _fail(where, f"the first arg must be a variant name, got {variant!r}")
    try:
        spec = lookup(variant)
    except EffzooError as e:
        raise _fail(where, str(e), type(e)) from None
    drop = options.get("drop_path_rate", 0.0)
    if isinstance(drop, bool) or not isinstance(drop, (int, float)) or not 0 <= drop < 1:
        raise _fail(where, f"drop_path_rate must be a number in [0, 1), got {drop!r}")
    return RowSpec(
        variant=spec.name,
        width=_multiplier(where, "width", options.get("width", 1.0), scale_width),
        depth=_multiplier(where, "depth", options.get("depth", 1.0), scale_depth),
        pretrained=_pretrained(where, options.get("pretrained", True)),
        levels=_levels(where, options.get("levels", ALL_LEVELS)),
        drop_path_rate=float(drop),
        where=where,
    )


_WARNED: set[tuple[str, str]] = set()


def _warn_once(key: tuple[str, str], message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(message, PretrainedUnavailableWarning, stacklevel=3)


def _catalogued(variant: str) -> bool:
    from .. import weights

    tags_for = getattr(weights, "tags_for", None)
    return tags_for is None or bool(tags_for(lookup(variant)))


def build_layers(spec: RowSpec, *, in_chans: int = 3) -> list[nn.Module]:
    """Build the backbone of a row and cut it into one layer per output level."""
    from ..factory import create

    kwargs: dict[str, Any] = dict(
        out_indices=spec.out_indices,
        width_mult=spec.width,
        depth_mult=spec.depth,
        in_chans=in_chans,
        drop_path_rate=spec.drop_path_rate,
    )
    pretrained = spec.pretrained
    silence = "write `pretrained: false` in the row's options to start from random init silently"
    if pretrained is True and not _catalogued(spec.variant):
        _warn_once(
            (spec.variant, "uncatalogued"),
            f"{spec.where}: effzoo has no pretrained weights for {spec.variant}; "
            f"it starts from random init ({silence}).",
        )
        pretrained = False
    if pretrained is True and (spec.variant, "unavailable") in _WARNED:
        pretrained = False  # failed once in this process: do not wait on the network again
    try:
        backbone = create(spec.variant, pretrained=pretrained, **kwargs)
    except (WeightsUnavailableError, WeightsNotFoundError) as e:
        if spec.pretrained is not True:  # an explicit tag or file: the user asked for it
            raise _fail(spec.where, str(e), type(e)) from None
        _warn_once(
            (spec.variant, "unavailable"),
            f"{spec.where}: {e}\nUntil then the backbone starts from random init ({silence}).",
        )
        backbone = create(spec.variant, pretrained=False, **kwargs)
    except EffzooError as e:
        raise _fail(spec.where, str(e), type(e)) from None
    return split_backbone(backbone, row=spec.where)
