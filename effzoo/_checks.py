"""The argument checks every entry point shares: ``create()``, yaml rows, ``effzoo yaml``.

Each check returns the normalised value or raises ``InvalidArgumentError``. The
same mistake gets the same message everywhere; ``where`` (a yaml file and row)
is put in front of it when given.
"""

from __future__ import annotations

import math
import os
from typing import Any, NoReturn

from .errors import EffzooError, InvalidArgumentError
from .registry import LEVEL_STRIDES

_STRIDES = ", ".join(map(str, LEVEL_STRIDES))


def fail(
    message: str, *, where: str = "", error: type[EffzooError] = InvalidArgumentError
) -> NoReturn:
    """Raise ``error`` with ``message``, prefixed by ``where`` when given."""
    raise error(f"{where}: {message}" if where else message)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def multiplier(name: str, value: Any, *, where: str = "") -> float:
    """A width/depth multiplier: a finite number > 0."""
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        fail(
            f"{name} must be a positive number, got {value!r}; 1.0 keeps the variant's own size",
            where=where,
        )
    return float(value)


def levels(name: str, value: Any, *, first: int, where: str = "") -> tuple[int, ...]:
    """Feature levels numbered from ``first`` (0: ``out_indices``, 1: P-levels):
    a non-empty, ascending list of distinct ints among the five levels."""
    last = first + len(LEVEL_STRIDES) - 1
    kind = f"{'P-levels' if first == 1 else 'level indices'} {first}..{last}"
    example = f"({first + 2}, {first + 3}, {first + 4}) gives P3/P4/P5"
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    try:
        idx = tuple(value)
    except TypeError:
        idx = ()
    if not idx or not all(isinstance(i, int) and not isinstance(i, bool) for i in idx):
        fail(
            f"{name} must be a non-empty sequence of {kind} (strides {_STRIDES}), "
            f"got {value!r}; {example}",
            where=where,
        )
    bad = [i for i in idx if not first <= i <= last]
    if bad:
        fail(
            f"{name} {bad} out of range: levels are {first}..{last} ({kind} at strides "
            f"{_STRIDES}); {example}",
            where=where,
        )
    want = tuple(sorted(set(idx)))
    if idx != want:
        what = "has duplicates and " if len(set(idx)) != len(idx) else ""
        fail(
            f"{name} {idx} {what}must be ascending without duplicates (features are returned "
            f"shallowest first); use {want}",
            where=where,
        )
    return idx


def drop_path_rate(value: Any, *, where: str = "") -> float:
    """Stochastic depth rate in [0, 1)."""
    if not _is_number(value) or not 0.0 <= value < 1.0:
        fail(f"drop_path_rate must be in [0, 1) (a number), got {value!r}", where=where)
    return float(value)


def pretrained(value: Any, *, where: str = "") -> bool | str | os.PathLike[str] | None:
    """``False``/``None``, ``True``, a weights tag or a file path."""
    if value is None or isinstance(value, bool) or isinstance(value, os.PathLike):
        return value
    if isinstance(value, str) and value.strip():
        return value
    fail(
        f"pretrained must be False, True, a weights tag or a file path, got {value!r}",
        where=where,
    )


def positive_int(name: str, value: Any, *, where: str = "") -> int:
    """An integer >= 1 (``in_chans``, ``nc``)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        fail(f"{name} must be an integer >= 1, got {value!r}", where=where)
    return int(value)


def choice(name: str, value: Any, options: tuple[str, ...], *, where: str = "") -> str:
    """One of ``options``."""
    if value not in options:
        fail(f"unknown {name} {value!r}; choose one of {', '.join(options)}", where=where)
    return str(value)
