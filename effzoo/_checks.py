"""The argument checks every entry point shares: ``create()``, yaml rows, ``effzoo yaml``.

Each check returns the normalised value or raises ``InvalidArgumentError``. The
same mistake gets the same message everywhere; ``where`` (a yaml file and row)
is put in front of it when given.
"""

from __future__ import annotations

import math
import numbers
import os
import reprlib
from typing import Any, NoReturn

from .errors import EffzooError, InvalidArgumentError
from .registry import LEVEL_STRIDES

_STRIDES = ", ".join(map(str, LEVEL_STRIDES))
#: the largest extra width/depth multiplier (on top of the variant's own): x4 width of
#: EfficientNet-L2 is already ~7x its 480M parameters; larger asks cannot be allocated
MAX_MULTIPLIER = 4.0
#: the most input channels a stem may take (hyperspectral stacks stay far below)
MAX_IN_CHANS = 1024
#: the most classes a model yaml (``nc``) may ask for: ImageNet-21k has 21,843
MAX_CLASSES = 100_000


#: how a user's value is shown in a message: bounded in depth, length and characters,
#: so a YAML alias bomb ("billion laughs") in a row is never expanded
_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxlist, _SHOWN.maxtuple, _SHOWN.maxdict = 3, 6, 6, 6
_SHOWN.maxstring, _SHOWN.maxother = 80, 80


def shown(value: Any) -> str:
    """``repr(value)``, at most a few hundred characters whatever ``value`` holds."""
    return _SHOWN.repr(value)


def fail(
    message: str, *, where: str = "", error: type[EffzooError] = InvalidArgumentError
) -> NoReturn:
    """Raise ``error`` with ``message``, prefixed by ``where`` when given."""
    raise error(f"{where}: {message}" if where else message)


def is_bool(value: Any) -> bool:
    """``True``/``False``, or numpy's boolean scalar (``np.True_``; its type is ``numpy.bool``)."""
    kind = type(value)
    return isinstance(value, bool) or (
        kind.__module__ == "numpy" and kind.__name__ in ("bool", "bool_")
    )


def is_number(value: Any) -> bool:
    """A real number (Python or numpy scalar), not a bool."""
    return isinstance(value, numbers.Real) and not is_bool(value)


def is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not is_bool(value)


def multiplier(name: str, value: Any, *, where: str = "") -> float:
    """A width/depth multiplier: a finite number in (0, MAX_MULTIPLIER]."""
    try:
        finite = is_number(value) and math.isfinite(value)
    except OverflowError:  # an int too large for a float is finite, and too large
        finite = True
    if not is_number(value) or not finite or value <= 0:
        fail(
            f"{name} must be a positive number, got {shown(value)}; "
            "1.0 keeps the variant's own size",
            where=where,
        )
    if value > MAX_MULTIPLIER:
        fail(
            f"{name} {shown(value)} is too large: at most {MAX_MULTIPLIER:g} on top of "
            "the variant's "
            "own size; for a bigger backbone pick a larger variant (effzoo list)",
            where=where,
        )
    return float(value)


def boolean(name: str, value: Any, *, where: str = "") -> bool:
    """``True`` or ``False`` (a string like "False" is refused: it would read as true)."""
    if not is_bool(value):
        fail(f"{name} must be True or False, got {shown(value)}", where=where)
    return bool(value)


def levels(name: str, value: Any, *, first: int, where: str = "") -> tuple[int, ...]:
    """Feature levels numbered from ``first`` (0: ``out_indices``, 1: P-levels):
    a non-empty, ascending list of distinct ints among the five levels."""
    last = first + len(LEVEL_STRIDES) - 1
    kind = f"{'P-levels' if first == 1 else 'level indices'} {first}..{last}"
    example = f"({first + 2}, {first + 3}, {first + 4}) gives P3/P4/P5"
    if is_int(value):
        value = (int(value),)
    try:
        idx = tuple(value)
    except TypeError:
        idx = ()
    if not idx or not all(is_int(i) for i in idx):
        fail(
            f"{name} must be a non-empty sequence of {kind} (strides {_STRIDES}), "
            f"got {shown(value)}; {example}",
            where=where,
        )
    idx = tuple(int(i) for i in idx)
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
    if not is_number(value) or not 0.0 <= value < 1.0:
        fail(f"drop_path_rate must be in [0, 1) (a number), got {shown(value)}", where=where)
    return float(value)


def pretrained(
    value: Any, *, where: str = "", none_ok: bool = True
) -> bool | str | os.PathLike[str] | None:
    """``False`` (or ``None`` where ``none_ok``), ``True``, a weights tag or a file path."""
    if (value is None and none_ok) or isinstance(value, os.PathLike):
        return value
    if is_bool(value):
        return bool(value)
    if isinstance(value, str) and value.strip():
        return value
    fail(
        f"pretrained must be False, True, a weights tag or a file path, got {shown(value)}",
        where=where,
    )


def positive_int(name: str, value: Any, *, where: str = "", most: int | None = None) -> int:
    """An integer >= 1 (``in_chans``, ``nc``), at most ``most`` when given."""
    if not is_int(value) or value < 1:
        fail(f"{name} must be an integer >= 1, got {shown(value)}", where=where)
    if most is not None and value > most:
        fail(f"{name} {shown(value)} is too large: at most {most}", where=where)
    return int(value)


def non_negative_int(name: str, value: Any, *, where: str = "") -> int:
    """An integer >= 0 (``--workers``, ``--warmup``)."""
    if not is_int(value) or value < 0:
        fail(f"{name} must be an integer >= 0, got {shown(value)}", where=where)
    return int(value)


def optional_str(name: str, value: Any, *, where: str = "") -> str | None:
    """``None`` or a non-empty string."""
    if value is not None and (not isinstance(value, str) or not value.strip()):
        fail(f"{name} must be a string or None, got {shown(value)}", where=where)
    return value


def choice(name: str, value: Any, options: tuple[str, ...], *, where: str = "") -> str:
    """One of ``options``."""
    if not isinstance(value, str) or value not in options:
        fail(f"unknown {name} {shown(value)}; choose one of {', '.join(options)}", where=where)
    return str(value)
