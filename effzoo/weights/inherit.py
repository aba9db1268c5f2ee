"""Weight selection (Xu et al., "Initializing Models with Larger Ones", ICLR 2024): a
width/depth-scaled model starts from its full-size weights; the rules and why residual
sums still add matching channels are in (docs/weights.md, "Scaled variants: inheritance").

Each target stage keeps the *first* blocks of the same source stage (``blocks.s.b`` from
``blocks.s.b``); every dimension that shrinks from ``S`` to ``T`` takes the channels
``floor(i * S / T)``. ``exact=True`` (a model at width and depth 1.0) forbids selection; a
target larger than its source anywhere is an error: nothing is left randomly initialised.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from ..errors import WeightsMismatchError
from .convert import stage_depths

_COUNTER = "num_batches_tracked"
#: where a refusal sends the user: what weight selection does and when it runs
_DOCS = '(docs/weights.md, "Scaled variants: inheritance")'


def select_indices(source: int, target: int) -> torch.Tensor:
    """The uniform subset of ``target`` indices out of ``source`` (identity if equal)."""
    if target > source:
        raise WeightsMismatchError(f"cannot select {target} channels out of {source}")
    return torch.arange(target) * source // target


def select(tensor: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Shrink every dimension of ``tensor`` to ``shape`` with ``select_indices``."""
    out = tensor
    for dim, (s, t) in enumerate(zip(tensor.shape, shape)):
        if s != t:
            out = out.index_select(dim, select_indices(s, t))
    return out


@dataclass(frozen=True)
class Selection:
    """What weight selection did: how many tensors were sliced, which blocks were kept."""

    tensors: int
    sliced: int
    target_depths: tuple[int, ...]
    source_depths: tuple[int, ...]

    @property
    def identity(self) -> bool:
        return self.sliced == 0 and all(
            t == s for t, s in zip(self.target_depths, self.source_depths)
        )

    def __str__(self) -> str:
        if self.identity:
            return f"all {self.tensors} tensors as is"
        return (
            f"weight selection: {self.sliced}/{self.tensors} tensors sliced, blocks per stage "
            f"{','.join(map(str, self.target_depths))} of "
            f"{','.join(map(str, self.source_depths))}"
        )


def _limit(items: list[str], n: int = 6) -> str:
    return ", ".join(items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")


def inherit(
    source: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    *,
    allowed: frozenset[str] = frozenset(),
    exact: bool = False,
) -> tuple[dict[str, torch.Tensor], Selection]:
    """Fill every tensor of ``target`` (a state dict or shapes) from ``source``.

    Both are timm-keyed. ``allowed`` names source keys that the target may leave out
    (the head and classifier of a feature extractor, stages past its deepest level);
    any other source key the target lacks is unexpected. ``exact`` (a model at width
    and depth 1.0) forbids selection: every shape must match. Raises
    ``WeightsMismatchError`` naming missing, unexpected, mismatched and too-large keys.
    """
    unexpected = sorted(set(source) - set(target) - allowed)
    missing = sorted(k for k in target if k not in source and not k.endswith(_COUNTER))
    src_depths, tgt_depths = stage_depths(source), stage_depths(target)
    deeper = [
        f"stage {s}: {t} blocks > {src_depths[s] if s < len(src_depths) else 0}"
        for s, t in enumerate(tgt_depths)
        if t > (src_depths[s] if s < len(src_depths) else 0)
    ]
    if deeper:
        raise WeightsMismatchError(
            f"the target is deeper than its weights ({'; '.join(deeper)}). Fix: use "
            "depth_mult <= 1.0 with these weights, or pretrained=False " + _DOCS
        )
    parts = [
        f"{what} {_limit(keys)}"
        for what, keys in (("missing", missing), ("unexpected", unexpected))
        if keys
    ]
    if parts:
        raise WeightsMismatchError(
            f"the weights do not fit the model: {'; '.join(parts)}. Check that the file is "
            "this variant's (effzoo info NAME lists its tags)"
        )
    differ = [
        f"{k} {tuple(source[k].shape)} in the file, {tuple(v.shape)} in the model"
        for k, v in target.items()
        if k in source
        and (v.dim() != source[k].dim() or (exact and tuple(v.shape) != tuple(source[k].shape)))
    ]
    if differ:
        how = "at width_mult=depth_mult=1.0 every tensor must match" if exact else "ranks differ"
        raise WeightsMismatchError(
            f"the weights do not fit the model ({how}): {_limit(differ, 4)}. Fix: pass this "
            "variant's file (effzoo info NAME lists its tags) " + _DOCS
        )
    larger = [
        f"{k} {tuple(v.shape)} > {tuple(source[k].shape)}"
        for k, v in target.items()
        if k in source and any(t > s for t, s in zip(v.shape, source[k].shape))
    ]
    if larger:
        raise WeightsMismatchError(
            f"the target is wider than its weights: {_limit(larger, 4)}. Fix: use "
            "width_mult <= 1.0 with these weights, or pretrained=False " + _DOCS
        )
    # a BN counter the file does not carry keeps the model's
    out = {k: select(source[k], tuple(v.shape)) if k in source else v for k, v in target.items()}
    sliced = sum(1 for k, v in target.items() if k in source and source[k].shape != v.shape)
    counted = sum(1 for k in target if not k.endswith(_COUNTER))
    used = tuple(src_depths[: len(tgt_depths)])
    return out, Selection(counted, sliced, tuple(tgt_depths), used)
