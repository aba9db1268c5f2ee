"""The record an effzoo layer of a YOLO checkpoint pickles as (``effzoo.yolo.checkpoint``),
and ``check``, the rules it meets wherever it is read: ``YOLO("best.pt")`` rebuilding the
layer, ``pretrained="best.pt"`` taking the backbone out of it (``yolo_file``).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import torch

from .._version import __version__
from ..errors import CheckpointFormatError

#: the checkpoint format this effzoo writes and the newest it reads
FORMAT = 2
#: what every format-2 record holds (``digest`` is absent from the first ones)
KEYS = ("build", "drop_probs", "attrs", "effzoo_modules", "eval", "frozen", "tensors")
BUILD_KEYS = ("spec", "out_indices", "width_mult", "depth_mult", "in_chans", "padding", "bn_eps")
#: paddings and batch-norm epsilons a build may record (besides the variant's own)
_PADDINGS, _EPS = ("", "same"), (None, 1e-3, 1e-5)
#: a block's tensors: ``[backbone.]blocks.STAGE.BLOCK.`` (stem layer), ``stages.`` (stages)
_BLOCK = re.compile(r"(?:^|\.)(?:blocks|stages)\.(\d+)\.(\d+)\.")


def digest(tensors: dict[str, torch.Tensor]) -> str | None:
    """sha256 of a state dict (names, dtypes, shapes, bytes): what a record's tensors must
    hash to on load; None for tensors without data (the meta device)."""
    if any(t.is_meta for t in tensors.values()):
        return None
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def wrote(held: dict[str, Any]) -> dict[str, str]:
    """The versions a record says wrote it (only those given as strings)."""
    versions = held.get("versions")
    versions = versions if isinstance(versions, dict) else {}
    return {k: v for k, v in versions.items() if isinstance(v, str)}


def damaged(what: str, why: str) -> CheckpointFormatError:
    return CheckpointFormatError(
        f"this checkpoint is damaged: {what}; it was not loaded, and no effzoo or timm "
        "version loads it. Use another copy of the file (last.pt, a backup) or train again",
        reason=f"damaged checkpoint: {why}",
    )


def _newer(held: dict[str, Any], fmt: int) -> CheckpointFormatError:
    effzoo, timm = wrote(held).get("effzoo"), wrote(held).get("timm")
    by = f"effzoo {effzoo} (checkpoint format {fmt}, timm {timm})" if effzoo else None
    return CheckpointFormatError(
        f"this checkpoint was written by {by or f'a newer effzoo (checkpoint format {fmt})'}; "
        f"this is effzoo {__version__}, which reads formats up to {FORMAT}. Upgrade "
        f"effzoo{f' to {effzoo} or newer' if effzoo else ''}: git pull in its checkout, then "
        'pip install ".[yolo]" (docs/yolo.md, "What a checkpoint holds")',
        reason=f"checkpoint format {fmt!r} of effzoo {effzoo or 'unknown'}",
    )


def _misfit(held: dict[str, Any]) -> str | None:
    """How the tensors differ from what the record's build of its variant has (the stem's
    channels, each stage's blocks and output channels), else None."""
    from ..backbone import block_args, round_fn  # timm's arch helpers, when needed

    build, tensors = held["build"], held["tensors"]
    spec, width, depth = build["spec"], build["width_mult"], build["depth_mult"]
    if not all(
        isinstance(m, (int, float)) and not isinstance(m, bool) and m > 0 for m in (width, depth)
    ):
        return f"its width {width!r} and depth {depth!r} are not both positive numbers"
    try:
        chs, stages = round_fn(spec, width), block_args(spec, depth)
        want = spec.stem_size if spec.fix_stem else chs(spec.stem_size)
        outs = [chs(stage[-1]["out_chs"]) for stage in stages]
    except Exception:  # a timm that cannot read the row: the rebuild says which versions
        return None
    said = f"{spec.name} at width {width:g}, depth {depth:g}"
    stem = next((t for k, t in tensors.items() if k.endswith("conv_stem.weight")), None)
    if stem is not None and stem.shape[0] != want:
        return f"its stem has {stem.shape[0]} channels, {said} has {want}"
    first = held["attrs"].get("first", 0) if any(k.startswith("stages.") for k in tensors) else 0
    found: dict[int, dict[int, list[torch.Tensor]]] = {}
    for key, t in tensors.items():
        if m := _BLOCK.search(key):
            found.setdefault(first + int(m[1]), {}).setdefault(int(m[2]), []).append(t)
    for s, blocks in sorted(found.items()):
        have = len(stages[s]) if s < len(stages) else 0
        if len(blocks) != have:
            return f"its stage {s} has {len(blocks)} blocks, {said} has {have}"
        if not any(t.ndim == 4 and t.shape[0] == outs[s] for t in blocks[max(blocks)]):
            return f"its stage {s} does not output the {outs[s]} channels {said} has"
    return None


def check(held: dict[str, Any], *, layer: str = "effzoo") -> None:
    """``CheckpointFormatError`` for the record of an effzoo ``layer`` written by a newer
    effzoo, or damaged: a format that is not one, a key missing, a build its variant
    cannot have or its tensors do not have, tensors that do not hash to their digest."""
    fmt = held.get("format")
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt < 2:
        raise damaged(f"its {layer} layer's format is {fmt!r}, not a checkpoint format", "format")
    if fmt > FORMAT:
        raise _newer(held, fmt)
    build = held.get("build")
    missing = [k for k in KEYS if k not in held]
    missing += [f"build.{k}" for k in BUILD_KEYS if not isinstance(build, dict) or k not in build]
    if missing or not isinstance(held["tensors"], dict):
        raise damaged(f"its {layer} layer's record lacks {', '.join(missing)}", "a key missing")
    spec, padding, eps = build["spec"], build["padding"], build["bn_eps"]
    if not all(hasattr(spec, a) for a in ("name", "arch", "stem_size", "padding", "bn_eps")):
        raise damaged(f"its {layer} layer's record names no variant ({spec!r:.80})", "no variant")
    if padding not in (*_PADDINGS, spec.padding) or eps not in (*_EPS, spec.bn_eps):
        raise damaged(
            f"its record says {spec.name} was built with padding {padding!r} and batch-norm "
            f"eps {eps!r}, which no build of {spec.name} has (padding '' or 'same', eps 1e-3 "
            "or 1e-5)",
            "a build the variant cannot have",
        )
    want = held.get("digest")  # absent from the first format-2 checkpoints
    if want is not None and digest(held["tensors"]) != want:
        raise damaged(
            f"the tensors of its {layer} layer do not hash to the digest saved with them "
            "(a changed byte)",
            "tensors do not match their digest",
        )
    try:
        misfit = _misfit(held)
    except (AttributeError, TypeError, ValueError, KeyError, IndexError) as e:
        misfit = f"its build cannot be read ({type(e).__name__}: {str(e)[:120]})"
    if misfit:
        raise damaged(f"its {layer} layer's record does not fit its tensors: {misfit}", "misfit")
