"""The variant registry: typed spec rows, aliases and name lookup."""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass, field
from typing import Literal

from .errors import InvalidArgumentError, UnknownModelError

Family = Literal["v1", "lite", "v2"]

#: Output strides of the five feature levels (P1..P5) every EfficientNet has.
LEVEL_STRIDES: tuple[int, ...] = (2, 4, 8, 16, 32)


@dataclass(frozen=True)
class BackboneSpec:
    """One EfficientNet variant, as data.

    ``arch`` is timm's block-string table (one tuple of block strings per stage),
    ``width``/``depth`` the variant's own compound coefficients. ``padding`` and
    ``bn_eps`` are those of the variant's default weights ("same" and 1e-3 for
    TF-ported weights); a weights tag may override them.
    """

    name: str
    family: Family
    arch: tuple[tuple[str, ...], ...]
    width: float
    depth: float
    resolution: int
    stem_size: int
    act: str
    timm_arch: str
    paper_params_m: float
    fix_stem: bool = False
    num_features: int = 1280
    round_num_features: bool = True
    round_limit: float = 0.9
    fix_first_last: bool = False
    padding: str = ""
    bn_eps: float | None = None
    aliases: tuple[str, ...] = field(default=())


_REGISTRY: dict[str, BackboneSpec] = {}
_ALIASES: dict[str, str] = {}


def normalize(name: str) -> str:
    """Lower-case, strip, and use ``_`` for ``-`` so spellings compare equal."""
    return name.strip().lower().replace("-", "_")


def register(spec: BackboneSpec) -> BackboneSpec:
    """Add a variant; its name and aliases must not clash with existing ones."""
    keys = {normalize(spec.name), *(normalize(a) for a in spec.aliases)}
    for key in keys:
        owner = _ALIASES.get(key)
        if owner is not None and owner != spec.name:
            raise ValueError(f"name {key!r} of {spec.name} is already used by {owner}")
    _REGISTRY[spec.name] = spec
    for key in keys:
        _ALIASES[key] = spec.name
    return spec


def lookup(name: str) -> BackboneSpec:
    """Return the spec for a variant name or alias, or raise ``UnknownModelError``."""
    if isinstance(name, BackboneSpec):
        return name
    if not isinstance(name, str):
        raise UnknownModelError(
            f"model name must be a string, got {type(name).__name__}; "
            "see effzoo.list_models() for the names"
        )
    canonical = _ALIASES.get(normalize(name))
    if canonical is None:
        close = difflib.get_close_matches(normalize(name), list(_ALIASES), n=3, cutoff=0.6)
        close = list(dict.fromkeys(_ALIASES[c] for c in close))
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"unknown model {name!r}.{hint} effzoo.list_models() (or `effzoo list`) "
            "shows every variant."
        )
    return _REGISTRY[canonical]


def list_models(pattern: str = "*") -> list[str]:
    """Canonical variant names matching a shell-style ``pattern``, sorted."""
    if not isinstance(pattern, str):
        raise InvalidArgumentError(
            f"list_models() takes a shell-style pattern string like '*v2*', got {pattern!r}"
        )
    pat = normalize(pattern)
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pat))


def all_specs() -> list[BackboneSpec]:
    """Every registered spec, sorted by name."""
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]
