"""The backbone inside an Ultralytics checkpoint (``best.pt``), read without running it.

An Ultralytics checkpoint pickles the whole model, so ``torch.load(weights_only=True)``
refuses it, and unpickling it for real runs whatever the file names. Here torch's own
loader unpickles it with an inert stand-in (a record of its name, arguments and state) for
every class and function the file names; only torch's ``weights_only`` allow-list (tensor
rebuilding, dtypes, ``OrderedDict``) is real. Nothing of the file runs, and neither
Ultralytics nor ``effzoo.yolo`` needs to be installed. From the layers' tensors:

* an effzoo backbone (a ``BackboneStem`` and the ``BackboneStages`` after it, pickled as
  modules by effzoo 0.1 or through ``effzoo.yolo.modules.rebuild`` later) becomes a timm
  state dict, with how it was built (variant, width, depth, padding, BN epsilon), the
  input normalization its stem applied, and the tag it started from;
* a stock Ultralytics ``TorchVision`` EfficientNet layer becomes a torchvision state dict
  (Ultralytics feeds it 0..1 images, unnormalized).
"""

from __future__ import annotations

import _compat_pickle
import pickle
import types
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import CorruptWeightsError, WeightsMismatchError, first_line
from . import layer_record

_EFFZOO_LAYERS = ("effzoo.yolo.modules.BackboneStem", "effzoo.yolo.modules.BackboneStages")
_REBUILD = "effzoo.yolo.modules.rebuild"
_TORCHVISION = "ultralytics.nn.modules.block.TorchVision"


class _StandIn:
    """What a class or function named in the pickle becomes: its arguments and state."""

    where = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__["_args"] = args

    def __setstate__(self, state: Any) -> None:
        if (
            isinstance(state, tuple)
            and len(state) == 2
            and all(s is None or isinstance(s, dict) for s in state)
        ):
            for part in state:
                self.__dict__.update(part or {})
        elif isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__["_state"] = state


def _allowed() -> dict[str, Any]:
    """torch's own allow-list of ``weights_only`` (what rebuilds tensors), else a minimum."""
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        return dict(_get_allowed_globals())
    except (ImportError, AttributeError):  # pragma: no cover - a torch without it
        import collections

        return {"collections.OrderedDict": collections.OrderedDict, "torch.Size": torch.Size}


class _Unpickler(pickle.Unpickler):
    _stand_ins: dict[str, type] = {}
    _real = _allowed()

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _compat_pickle.NAME_MAPPING:  # protocol 2: Python 2 names
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        where = f"{module}.{name}"
        if where in self._real:
            return self._real[where]
        if where not in self._stand_ins:
            self._stand_ins[where] = type(name, (_StandIn,), {"where": where})
        return self._stand_ins[where]


_PICKLE = types.ModuleType("effzoo_inert_pickle")
_PICKLE.Unpickler = _Unpickler  # type: ignore[attr-defined]
_PICKLE.load = pickle.load  # type: ignore[attr-defined]  # torch's legacy format only


def is_ultralytics_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a torch zip file whose pickle names Ultralytics' or effzoo's
    model classes (read from the archive's pickle bytes; nothing is unpickled)."""
    try:
        with zipfile.ZipFile(path) as z:
            name = next((n for n in z.namelist() if n.endswith("/data.pkl")), None)
            if name is None:
                return False
            text = z.read(name)
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    return b"ultralytics.nn" in text or b"effzoo.yolo.modules" in text


@dataclass(frozen=True)
class YoloBackbone:
    """A backbone taken out of an Ultralytics checkpoint."""

    tensors: dict[str, torch.Tensor]  # timm keys (effzoo) or torchvision keys (TorchVision)
    layout: str  # "timm" | "torchvision"
    origin: str  # which checkpoint, model and layers (for the weights record)
    variant: str | None = None  # effzoo: the variant it was built as
    width_mult: float = 1.0
    depth_mult: float = 1.0
    padding: str | None = None
    bn_eps: float | None = None
    mean: tuple[float, ...] | None = None  # the normalization its layer applied (0..1 input)
    std: tuple[float, ...] | None = None
    tag: str | None = None  # the weights tag it started from, if it started pretrained

    def create_call(self, variant: str, path: object) -> str:
        """The ``effzoo.create(...)`` call that builds this backbone as it was trained."""
        scaled = "".join(
            f", {k}={v:g}"
            for k, v in (("width_mult", self.width_mult), ("depth_mult", self.depth_mult))
            if v != 1.0
        )
        return f"effzoo.create({variant!r}{scaled}, pretrained={str(path)!r})"


def _where(obj: object) -> str:
    """The dotted name a stand-in (an instance, or a class named in the pickle) stands for."""
    if isinstance(obj, type) and issubclass(obj, _StandIn):
        return obj.where
    return getattr(type(obj), "where", type(obj).__name__)


def _held(layer: Any) -> Any:
    """The record an effzoo layer pickled through ``rebuild(cls, record)`` holds (format 2),
    or None for a module pickled as such (effzoo 0.1, and every other layer)."""
    if _where(layer) != _REBUILD:
        return None
    return layer._args[1] if len(layer._args) > 1 else {}


def _state_dict(obj: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """What ``obj.state_dict()`` would give, from a module's stand-in (or, for an effzoo
    layer pickled through ``rebuild``, the tensors it holds)."""
    held = _held(obj)
    if held is not None:
        tensors = held.get("tensors") if isinstance(held, dict) else None
        return {prefix + k: v for k, v in (tensors or {}).items() if isinstance(v, torch.Tensor)}
    d = getattr(obj, "__dict__", {})
    out: dict[str, torch.Tensor] = {}
    for k, v in (d.get("_parameters") or {}).items():
        if isinstance(v, torch.Tensor):
            out[prefix + k] = v
    skip = d.get("_non_persistent_buffers_set") or set()
    for k, v in (d.get("_buffers") or {}).items():
        if isinstance(v, torch.Tensor) and k not in skip:
            out[prefix + k] = v
    for k, m in (d.get("_modules") or {}).items():
        if m is not None:
            out.update(_state_dict(m, f"{prefix}{k}."))
    return out


def _kind(layer: Any) -> str:
    """The class a layer's stand-in stands for (through ``rebuild``, or the protocol 0/1
    ``copyreg._reconstructor``: the class it makes)."""
    if _where(layer) in (_REBUILD, "copyreg._reconstructor") and getattr(layer, "_args", ()):
        return _where(layer._args[0])
    return _where(layer)


def _attrs(layer: Any) -> dict[str, Any]:
    """A layer's own attributes (``first``, ``level``, ``backbone`` ...), either format."""
    held = _held(layer)
    if held is None:
        return dict(getattr(layer, "__dict__", {}))
    own = held.get("attrs") if isinstance(held, dict) else None
    return own if isinstance(own, dict) else {}


def read(path: Path) -> YoloBackbone:
    """The backbone of the Ultralytics checkpoint ``path`` (its EMA model when it has one,
    as Ultralytics loads it); ``WeightsMismatchError`` when it holds no EfficientNet
    backbone, ``CorruptWeightsError`` when it cannot be read."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_PICKLE)
    except Exception as e:
        raise CorruptWeightsError(
            f"{path} looks like an Ultralytics checkpoint but could not be read "
            f"({type(e).__name__}: {first_line(e, 160)}); it is truncated or damaged"
        ) from e
    which, model = "model", ckpt
    if isinstance(ckpt, dict):
        which = next((k for k in ("ema", "model") if ckpt.get(k) is not None), "")
        model = ckpt.get(which)
    seq = (getattr(model, "__dict__", {}).get("_modules") or {}).get("model")
    layers = list(((getattr(seq, "__dict__", {}).get("_modules")) or {}).items())
    if not layers:
        raise WeightsMismatchError(
            f"{path} holds no Ultralytics model (no 'ema' or 'model' with layers); pass a "
            "best.pt or last.pt that Ultralytics wrote"
        )
    where = f"the Ultralytics checkpoint {path} ({which!r} model"
    epoch = ckpt.get("epoch") if isinstance(ckpt, dict) else None
    where += f", epoch {epoch})" if isinstance(epoch, int) and epoch >= 0 else ")"
    stems = [i for i, (_, m) in enumerate(layers) if _kind(m) == _EFFZOO_LAYERS[0]]
    if stems:
        return _effzoo(layers, stems[0], where)
    for name, layer in layers:
        if _kind(layer) == _TORCHVISION:
            return _torchvision(layer, name, where)
    kinds = ", ".join(sorted({_kind(m).rsplit(".", 1)[-1] for _, m in layers}))
    raise WeightsMismatchError(
        f"{where} has no EfficientNet backbone effzoo can take out (layers: {kinds}). Fix: "
        "pass a model with an effzoo row or a TorchVision EfficientNet layer "
        '(docs/weights.md, "Local files")'
    )


def _checked(layer: Any, kind: str) -> dict[str, Any]:
    """A layer's record (format 2; none in effzoo 0.1's), checked as ``YOLO()`` checks it."""
    held = _held(layer)
    if held is not None:
        layer_record.check(held if isinstance(held, dict) else {}, layer=kind)
    return held or {}


def _effzoo(layers: list[tuple[str, Any]], start: int, where: str) -> YoloBackbone:
    stem_name, stem = layers[start]
    held = _checked(stem, "BackboneStem")
    sd = _state_dict(stem)
    tensors = {k[len("backbone.") :]: v for k, v in sd.items() if k.startswith("backbone.")}
    used = [f"{stem_name} (BackboneStem)"]
    for name, layer in layers[start + 1 :]:
        if _kind(layer) != _EFFZOO_LAYERS[1]:
            break
        first = int(_attrs(layer).get("first", 0))
        _checked(layer, "BackboneStages")
        for k, v in _state_dict(layer).items():
            stage, _, rest = k.removeprefix("stages.").partition(".")
            tensors[f"blocks.{first + int(stage)}.{rest}"] = v
        used.append(f"{name} (BackboneStages)")
    backbone = (_attrs(stem).get("_modules") or {}).get("backbone")
    bb = dict(getattr(backbone, "__dict__", {}))  # effzoo 0.1: the pickled Backbone module
    build = held.get("build") or {}
    if isinstance(held.get("backbone"), dict):
        bb = {**bb, **held["backbone"]}
    spec = build.get("spec") or bb.get("spec")
    record = bb.get("weights")
    stats = [sd.get(k) for k in ("mean", "std")]
    mean, std = (tuple(float(x) for x in t.flatten()) if t is not None else None for t in stats)
    return YoloBackbone(
        tensors=tensors,
        layout="timm",
        origin=f"layers {', '.join(used)} of {where}",
        variant=getattr(spec, "name", None),
        width_mult=float(build.get("width_mult", bb.get("width_mult", 1.0))),
        depth_mult=float(build.get("depth_mult", bb.get("depth_mult", 1.0))),
        padding=build.get("padding", bb.get("padding")),
        bn_eps=build.get("bn_eps", bb.get("bn_eps")),
        mean=mean,
        std=std,
        tag=getattr(record, "tag", None),
    )


def _torchvision(layer: Any, name: str, where: str) -> YoloBackbone:
    sd = _state_dict(layer)
    if any(k.startswith("m.features.") for k in sd):  # not unwrapped: the whole model
        tensors = {k[2:]: v for k, v in sd.items() if k.startswith("m.")}
    else:  # unwrapped: features' children, then (untruncated) avgpool and classifier
        tensors = {f"features.{k[2:]}": v for k, v in sd.items() if k.startswith("m.")}
    return YoloBackbone(
        tensors=tensors,
        layout="torchvision",
        origin=f"layer {name} (TorchVision) of {where}",
        mean=(0.0, 0.0, 0.0),  # Ultralytics feeds it images scaled to 0..1, nothing else
        std=(1.0, 1.0, 1.0),
    )
