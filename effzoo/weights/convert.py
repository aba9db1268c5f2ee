"""State-dict layouts: detection and conversion to timm's keys (docs/weights.md, "Local files").

timm files load as they are. ``torchvision`` (``features.N.M.block.J...``) and
``lukemelas`` EfficientNet-PyTorch (``_conv_stem``, ``_blocks.N._depthwise_conv``...) list
a variant's tensors in timm's order under other names: their keys are sorted into that
canonical order (a rank table per layout, so a name-sorted file works too) and paired one
to one with a reference timm model's keys, every shape checked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Literal, TypeVar

import torch

from ..errors import WeightsMismatchError

Layout = Literal["timm", "torchvision", "lukemelas"]

#: checkpoint wrappers whose value is the state dict (training scripts save these)
_WRAPPERS = ("state_dict", "model_state_dict", "model", "state_dict_ema", "model_ema")
#: prefixes added by DataParallel / wrappers, stripped when every key has one
_PREFIXES = ("module.", "model.", "backbone.")

_PARAM_RANK = {"weight": 0, "bias": 1, "running_mean": 2, "running_var": 3}
_LUKEMELAS_TOP = {"_conv_stem": 0, "_bn0": 1, "_blocks": 2, "_conv_head": 3, "_bn1": 4, "_fc": 5}
_LUKEMELAS_BLOCK = {
    "_expand_conv": 0,
    "_bn0": 1,
    "_depthwise_conv": 2,
    "_bn1": 3,
    "_se_reduce": 4,
    "_se_expand": 5,
    "_project_conv": 6,
    "_bn2": 7,
}
_TORCHVISION_TOP = {"features": 0, "classifier": 1}
#: each layout's classifier (Linear) keys -> timm's
_CLASSIFIER = {
    "timm": {"classifier.weight": "classifier.weight", "classifier.bias": "classifier.bias"},
    "torchvision": {
        "classifier.1.weight": "classifier.weight",
        "classifier.1.bias": "classifier.bias",
    },
    "lukemelas": {"_fc.weight": "classifier.weight", "_fc.bias": "classifier.bias"},
}
_COUNTER = "num_batches_tracked"
_T = TypeVar("_T")


def unwrap(obj: object) -> dict[str, torch.Tensor]:
    """The tensor dict inside a loaded checkpoint (plain, wrapped or prefixed)."""
    for _ in range(3):
        if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            inner = next((obj[k] for k in _WRAPPERS if isinstance(obj.get(k), Mapping)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping):
        raise WeightsMismatchError(
            f"expected a state dict (a mapping of names to tensors), got {type(obj).__name__}; "
            "save weights with torch.save(model.state_dict(), path)"
        )
    odd = next((k for k in obj if not isinstance(k, str)), None)
    if odd is not None:
        raise WeightsMismatchError(
            f"state-dict keys must be strings (tensor names), found the "
            f"{type(odd).__name__} {str(odd)[:40]!r}; save weights with "
            "torch.save(model.state_dict(), path)"
        )
    sd = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not sd:
        raise WeightsMismatchError(
            "the checkpoint holds no tensors; save weights with "
            "torch.save(model.state_dict(), path)"
        )
    return unwrap_keys(sd)


def unwrap_keys(sd: dict[str, _T]) -> dict[str, _T]:
    """Strip a prefix (``module.``, ...) that every key carries."""
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix) :]: v for k, v in sd.items()}
    return sd


def detect_layout(keys: object) -> Layout:
    """Which layout a state dict's keys are in, from key patterns."""
    ks = set(keys)  # type: ignore[call-overload]
    if not ks:
        raise WeightsMismatchError(
            "the file holds no tensors; save weights with torch.save(model.state_dict(), path) "
            "or safetensors.torch.save_file"
        )
    if "conv_stem.weight" in ks and any(k.startswith("blocks.") for k in ks):
        return "timm"
    if "features.0.0.weight" in ks and any(k.startswith("features.1.") for k in ks):
        return "torchvision"
    if "_conv_stem.weight" in ks and any(k.startswith("_blocks.") for k in ks):
        return "lukemelas"
    sample = ", ".join(sorted(ks)[:4])
    raise WeightsMismatchError(
        f"unrecognised state-dict layout (keys like {sample}, ...): effzoo reads timm, "
        "torchvision and lukemelas EfficientNet-PyTorch EfficientNet state dicts"
    )


_STEM: dict[Layout, str] = {
    "timm": "conv_stem.weight",
    "torchvision": "features.0.0.weight",
    "lukemelas": "_conv_stem.weight",
}


def check_shapes(shapes: Mapping[str, Sequence[int]], layout: Layout) -> None:
    """Shape checks that need no model: a 4-D stem conv, a 2-D classifier (1-D bias) and
    1-D batch-norm statistics. ``WeightsMismatchError`` lists what is malformed."""
    want = {_STEM[layout]: 4, **{k: 2 if k.endswith("weight") else 1 for k in _CLASSIFIER[layout]}}
    bad = [
        f"{k} {tuple(s)} (expected {want.get(k, 1)}-D)"
        for k, s in shapes.items()
        if (k in want or k.endswith(("running_mean", "running_var"))) and len(s) != want.get(k, 1)
    ]
    if bad:
        raise WeightsMismatchError(
            f"malformed {layout} tensors: {', '.join(bad[:6])}{' ...' if len(bad) > 6 else ''}; "
            "the file is not an EfficientNet state dict"
        )


def checked_layout(shapes: Mapping[str, Sequence[int]]) -> tuple[Layout, int | None]:
    """A state dict's layout (from its key -> shape map, ``check_shapes`` passed) and its
    classifier's number of classes (None without one)."""
    layout = detect_layout(shapes)
    check_shapes(shapes, layout)
    return layout, classifier_classes(shapes, layout)


def _component_rank(layout: Layout, parts: list[str], i: int) -> tuple[int, int | str]:
    part = parts[i]
    if part.isdigit():
        return (0, int(part))
    if i == len(parts) - 1 and part in _PARAM_RANK:
        return (1, _PARAM_RANK[part])
    table: dict[str, int] = {}
    if layout == "lukemelas":
        table = _LUKEMELAS_BLOCK if parts[0] == "_blocks" and i == 2 else _LUKEMELAS_TOP
    elif layout == "torchvision" and i == 0:
        table = _TORCHVISION_TOP
    return (2, table[part]) if part in table else (3, part)


def canonical_order(keys: object, layout: Layout) -> list[str]:
    """Keys in module-definition order (stem, blocks, head, classifier)."""

    def rank(key: str) -> tuple[tuple[int, int | str], ...]:
        parts = key.split(".")
        return tuple(_component_rank(layout, parts, i) for i in range(len(parts)))

    return sorted(keys, key=rank)  # type: ignore[call-overload]


def _module(key: str) -> str:
    return key.rsplit(".", 1)[0]


def to_timm(
    sd: Mapping[str, torch.Tensor],
    layout: Layout,
    reference: Mapping[str, tuple[int, ...]],
) -> dict[str, torch.Tensor]:
    """Rename a state dict to timm's keys.

    ``reference`` maps timm keys (in state-dict order) to shapes for the full-size
    classifier of the variant the weights belong to (any number of classes). Tensors
    are paired in canonical order; a count or shape that differs raises
    ``WeightsMismatchError`` naming the keys.
    """
    if layout == "timm":
        return dict(sd)
    cls_map = _CLASSIFIER[layout]
    src = [k for k in canonical_order(sd, layout) if not k.endswith(_COUNTER) and k not in cls_map]
    ref = [k for k in reference if not k.endswith(_COUNTER) and not k.startswith("classifier.")]
    out: dict[str, torch.Tensor] = {}
    modules: dict[str, str] = {}
    for s, r in zip(src, ref):
        if tuple(sd[s].shape) != tuple(reference[r]):
            raise WeightsMismatchError(
                f"{layout} tensor {s} {tuple(sd[s].shape)} does not fit timm's {r} "
                f"{tuple(reference[r])}: the file is not this variant's weights (or not at "
                "width/depth 1.0); pick the variant the weights were trained for"
            )
        out[r] = sd[s]
        modules[_module(s)] = _module(r)
    if len(src) != len(ref):
        longer, which = (
            (src[len(ref) :], "unexpected") if len(src) > len(ref) else (ref[len(src) :], "missing")
        )
        raise WeightsMismatchError(
            f"{layout} state dict has {len(src)} tensors where the variant has {len(ref)}: "
            f"{which} {', '.join(longer[:6])}{' ...' if len(longer) > 6 else ''}"
        )
    for k, v in sd.items():
        if k.endswith(_COUNTER) and _module(k) in modules:
            out[f"{modules[_module(k)]}.{_COUNTER}"] = v
        elif k in cls_map:
            out[cls_map[k]] = v
    return out


def classifier_classes(shapes: Mapping[str, Sequence[int]], layout: Layout) -> int | None:
    """Number of classes of the checkpoint's classifier (from key -> shape), or None."""
    w = next((shapes[k] for k in _CLASSIFIER[layout] if k.endswith("weight") and k in shapes), None)
    return int(w[0]) if w is not None else None


_BLOCK = re.compile(r"^blocks\.(\d+)\.(\d+)\.")


def stage_depths(keys: object) -> list[int]:
    """Blocks per stage of a timm-keyed state dict."""
    depth: dict[int, int] = {}
    for k in keys:  # type: ignore[attr-defined]
        m = _BLOCK.match(k)
        if m:
            s, b = int(m.group(1)), int(m.group(2))
            depth[s] = max(depth.get(s, 0), b + 1)
    return [depth.get(s, 0) for s in range(max(depth) + 1)] if depth else []
