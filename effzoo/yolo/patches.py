"""Every change effzoo makes to Ultralytics, in one place, applied by ``register()``.

Wrapped at registration (each marked, so registering twice changes nothing):

- ``tasks.parse_model``: an effzoo row becomes one ``Index`` placeholder row per
  output level (its channel count computed from the registry), stock code builds
  every other row, then the placeholders are swapped for the backbone layers and the
  model table shows them. Every yaml build goes through it (also resume and
  fine-tuning from a checkpoint's stored yaml).
- ``tasks.BaseModel.fuse``: folds the effzoo backbones before Ultralytics folds its
  own Conv/BN pairs (Ultralytics fuses before predict and val); inside an export, the
  folded weights are made contiguous NCHW (``fuse.contiguous_weights``).
- ``exporter.Exporter.__call__``: an export with ``dynamic=False`` (Ultralytics'
  default) traces TF "same" padding as constants (``padding.static_sizes``), so no
  simplifier or converter has to get shape-dependent asymmetric padding right
  (onnxslim 0.1.98 does not: docs/deploy.md); an MNN export runs without MNN's
  converter pip-installing its logging SDK (``converters.mnn_without_pip``).
- ``tasks.check_yaml`` as ``yaml_model_load`` sees it: a model name effzoo provides
  (``yolo11n-effv2s.yaml``, the recipe's ``yolo11-EfficientNetV1.yaml``) that is not
  a file on disk resolves to a yaml generated from the installed Ultralytics files.
- ``dist.generate_ddp_file``: the script Ultralytics writes for multi-GPU workers
  imports ``effzoo.yolo`` first, so a worker has the rows registered.

- ``get_model`` of every trainer class (``BaseTrainer`` and its subclasses, also those
  defined later, through ``BaseTrainer.__init_subclass__``): while it runs, the
  ``weights`` it was given are the checkpoint being rebuilt (a context variable).

A checkpoint is its own start: when Ultralytics rebuilds a model to load a checkpoint
into it (resume, ``YOLO("best.pt").train()``, ``pretrained=best.pt``: a trainer's
``get_model(cfg, weights)``), ``checkpoint_start`` reads that checkpoint and the row
is built without fetching ImageNet weights (Ultralytics transfers the checkpoint's).

Each build of a model with an effzoo row logs one line through Ultralytics' LOGGER:
the variant, its multipliers and what the backbone starts from (the same text is the
first layer's ``provenance``, saved in the checkpoint). A trainer's rebuild of the model
its user built (``Model.train``) does not repeat a line already said (one event, one line).

Opt-in, for offline runs (``quiet_ultralytics()``, used by ``effzoo demo``):
``check_font`` falls back to a font already on disk instead of downloading Arial,
and this process sends no usage events.

Registering costs almost nothing (no timm import, nothing built); the seams these
patches rely on are declared and checked in ``seams`` (required or optional, at the
first effzoo row a process builds, never while a checkpoint unpickles).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import inspect
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgumentError, UltralyticsContractError
from . import seams
from .converters import MNN_NOTE, mnn_without_pip
from .seams import (
    _MARK,
    FLOOR,
    SEAMS,
    SUPPORTED,
    Seam,
    SeamDegradedWarning,
    _logger,
    _table_start,
    _type_name,
    check_contract,
    check_version,
    registered,
    seam_report,
)

if TYPE_CHECKING:  # imported where used: ``import effzoo.yolo`` must not import timm
    from .modules import CheckpointStart
    from .rows import RowSpec

# -- parse_model: effzoo rows -------------------------------------------------------


class _TableRewrite(logging.Filter):
    """Replace stock's model-table lines for the placeholder rows with the real layers."""

    def __init__(self, lines: dict[int, str]) -> None:
        super().__init__()
        self.lines = lines

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        for i, line in self.lines.items():
            if msg.startswith(_table_start(i)) and "Index" in msg:
                record.msg, record.args = line, ()
        return True


@contextlib.contextmanager
def _rewrite_table(logger: logging.Logger, lines: dict[int, str]) -> Iterator[None]:
    filt = _TableRewrite(lines)
    logger.addFilter(filt)
    try:
        yield
    finally:
        logger.removeFilter(filt)


def _wrap_parse_model(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def parse_model(d: dict[str, Any], ch: int, *args: Any, **kwargs: Any) -> Any:
        from ..factory import count_params
        from ..weights.sources import say
        from .rows import build_layers, find_row, width_note

        spec = find_row(d)
        if spec is None:
            return original(d, ch, *args, **kwargs)
        seams.ensure_contract(take_back=_unregister)  # the first row (a no-op after)
        layers = build_layers(spec, in_chans=int(ch), checkpoint=checkpoint_start(spec))
        where = spec.place or spec.where
        log = _logger()
        start = layers[0].provenance
        # random init that was not asked for: a WARNING before the first epoch, and again
        # when the training ends (``_say_at_train_end``)
        unasked = start.start == "random" and spec.request.pretrained is True
        say(log, logging.WARNING if unasked else logging.INFO, f"effzoo: {where}: {start}")
        trained = _UNASKED_RANDOM.get()
        if unasked and trained is not None:
            trained.append(f"{where}: {start}")
        note = width_note(spec, layers)
        if note:
            say(log, logging.INFO, f"effzoo: {where}: note: {note}")
        chans = list(layers[0].backbone.out_channels)
        d = dict(d)
        d["backbone"] = [[-1, 1, "Index", [c, 0]] for c in chans] + list(d["backbone"][1:])
        lines = {}
        for i, (layer, c) in enumerate(zip(layers, chans)):
            n_params = count_params(layer)
            size = f" x{spec.width:g}/{spec.depth:g}" if (spec.width, spec.depth) != (1, 1) else ""
            info = f"{spec.variant}{size} P{layer.level} ({c} ch)"
            lines[i] = f"{_table_start(i)}{1:>3}{n_params:10.0f}  {_type_name(layer):<45}{info:<30}"
        with _rewrite_table(log, {} if "model table" in seams.DEGRADED else lines):
            model, save = original(d, ch, *args, **kwargs)
        for i, layer in enumerate(layers):
            layer.i, layer.f, layer.type = i, -1, _type_name(layer)
            layer.np = count_params(layer)
            # Eval until the model is put in train mode: older Ultralytics probes the
            # strides with a forward pass in train mode, which would pull the pretrained
            # batch-norm statistics towards those of an all-zero image.
            model[i] = layer.eval()
        return model, save

    setattr(parse_model, _MARK, True)
    return parse_model


# -- BaseModel.fuse: fold effzoo backbones first -------------------------------------


def _wrap_fuse(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def fuse(self: Any, *args: Any, **kwargs: Any) -> Any:
        from ..fuse import contiguous_weights
        from .modules import fold_backbones

        fold_backbones(self)
        exporter = getattr(_EXPORT, "exporter", None)
        if exporter is not None:  # the exporter's own copy of the model
            contiguous_weights(self)
            if _needs_symmetric_pads(exporter):
                _symmetric_pads(self, kwargs.get("imgsz", args[1] if len(args) > 1 else None))
        return original(self, *args, **kwargs)

    setattr(fuse, _MARK, True)
    return fuse


# -- Exporter.__call__: constant padding at a static size, NCHW weights -------------

#: per thread: the Ultralytics exporter running, if any
_EXPORT = threading.local()
#: formats whose converter or runtime mishandles a ``Pad`` before a convolution: their
#: static exports pad symmetrically by growing kernels (Paddle Inference 3.2.2 aborts)
SYMMETRIC_PAD_FORMATS = frozenset({"paddle"})


def _needs_symmetric_pads(exporter: Any) -> bool:
    args = exporter.args
    return str(args.format).lower() in SYMMETRIC_PAD_FORMATS and not args.dynamic


def _symmetric_pads(model: Any, imgsz: Any) -> None:
    import torch

    from ..fuse import symmetric_padding_at

    if imgsz is None:
        return
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else tuple(imgsz)[-2:]
    ch = int(getattr(model, "yaml", {}).get("channels", 3))
    symmetric_padding_at(model, torch.zeros(1, ch, int(h), int(w)))


def _wrap_export_call(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def __call__(self: Any, *args: Any, **kwargs: Any) -> Any:
        from ..padding import static_sizes

        prev = getattr(_EXPORT, "exporter", None)
        _EXPORT.exporter = self
        try:
            # read when each graph is traced: the exporter owns its args
            with (
                static_sizes(lambda: not getattr(self.args, "dynamic", False)),
                mnn_without_pip(getattr(self.args, "format", "")) as inert,
            ):
                if inert:
                    from ultralytics.utils import LOGGER

                    LOGGER.info(f"effzoo: {MNN_NOTE}")
                return original(self, *args, **kwargs)
        finally:
            _EXPORT.exporter = prev

    setattr(__call__, _MARK, True)
    return __call__


# -- check_yaml: effzoo's model names -----------------------------------------------


def _misnamed(file: Any) -> None:
    """A bare name that is not a file and means an effzoo model name spelt otherwise
    (``.yaml`` missing, ``.yml``, another case): one effzoo error naming the right one."""
    from . import templates

    path = Path(str(file))
    if len(path.parts) != 1 or path.exists():
        return
    meant = templates.suggest_name(path.name)
    if meant is not None:
        raise InvalidArgumentError(
            f"no model file {path.name!r}; did you mean effzoo's {meant!r}? (effzoo's model "
            "names end in .yaml; `effzoo yolo --help` lists them)"
        )


def _names_a_backbone(name: str) -> bool:
    """Whether a bare ``name`` that is not a file, not one of effzoo's model names and not
    a stock Ultralytics one means an effzoo model (``yolo11nn-effb0.yaml``)."""
    from ultralytics.utils.checks import check_yaml  # Ultralytics' own, not the wrapper

    from . import templates

    path = Path(name)
    if len(path.parts) != 1 or path.exists() or templates.is_model_name(path.name):
        return False
    return templates.suggest_name(path.name) is not None and not check_yaml(name, hard=False)


def _wrap_yaml_model_load(original: Callable[..., Any]) -> Callable[..., Any]:
    """The model file as typed, before Ultralytics retries it without its scale letter
    (``yolo11nn-effb0.yaml`` would load as ``yolo11n-effb0.yaml``; 8.3.x tries the
    shorter name first): a name that means an effzoo model gets effzoo's error."""

    @functools.wraps(original)
    def yaml_model_load(path: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(path, (str, Path)) and _names_a_backbone(str(path)):
            _misnamed(path)
        return original(path, *args, **kwargs)

    setattr(yaml_model_load, _MARK, True)
    return yaml_model_load


def _wrap_check_yaml(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def check_yaml(file: Any, *args: Any, **kwargs: Any) -> Any:
        from . import templates

        path = Path(str(file))
        if len(path.parts) == 1 and not path.exists() and templates.is_model_name(path.name):
            return str(templates.cfg_path(path.name))
        try:
            return original(file, *args, **kwargs)
        except FileNotFoundError:
            _misnamed(file)
            raise

    setattr(check_yaml, _MARK, True)
    return check_yaml


def _wrap_model_load(original: Callable[..., Any]) -> Callable[..., Any]:
    """``YOLO("yolo11n-efflite0")`` (no suffix) is taken for a weights file to download;
    a name that means an effzoo model name gets the effzoo error instead."""

    @functools.wraps(original)
    def _load(self: Any, weights: Any, *args: Any, **kwargs: Any) -> Any:
        degraded = "Model._load" in seams.DEGRADED
        if not degraded and isinstance(weights, str) and not Path(weights).suffix:
            _misnamed(weights)
        return original(self, weights, *args, **kwargs)

    setattr(_load, _MARK, True)
    return _load


# -- a checkpoint is its own start ---------------------------------------------------


#: the checkpoint a trainer's ``get_model(cfg, weights)`` is rebuilding a model for
_REBUILDING: contextvars.ContextVar[Any] = contextvars.ContextVar("effzoo_rebuilding", default=None)
#: the rows a build started from random init although they asked for ImageNet weights
#: (a trainer's ``get_model`` collects those of the model it trains; elsewhere, unread)
_UNASKED_RANDOM: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "effzoo_unasked_random", default=None
)


def _say_at_train_end(trainer: Any, rows: list[str]) -> None:
    """Repeat, after the final validation, that these rows trained from random init."""
    add = getattr(trainer, "add_callback", None)  # Ultralytics' public callbacks
    if not rows or add is None:
        return

    def said(_trainer: Any) -> None:
        for row in rows:
            _logger().warning(
                f"effzoo: this run trained from random init, not ImageNet weights: {row}. "
                "For the ImageNet start, make the weights available and train again "
                '(docs/yolo.md, "Weights and normalization")'
            )

    add("on_train_end", said)


def _wrap_get_model(original: Callable[..., Any]) -> Callable[..., Any]:
    """A trainer's ``get_model``: while it runs, ``checkpoint_start`` sees its ``weights``,
    and a line this process already said is not said again (``Model.train`` rebuilds the
    model its user built: one event, one line; what differs is said)."""
    from ..weights.sources import no_repeats

    signature = inspect.signature(original)

    @functools.wraps(original)
    def get_model(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            weights = signature.bind(self, *args, **kwargs).arguments.get("weights")
        except TypeError:  # let Ultralytics' own call raise its own error
            weights = None
        token = _REBUILDING.set(weights)
        unasked = _UNASKED_RANDOM.set([])
        try:
            with no_repeats():
                model = original(self, *args, **kwargs)
            _say_at_train_end(self, _UNASKED_RANDOM.get() or [])
            return model
        finally:
            _UNASKED_RANDOM.reset(unasked)
            _REBUILDING.reset(token)

    setattr(get_model, _MARK, True)
    return get_model


def _wrap_trainer(cls: type) -> None:
    """Wrap ``get_model`` where ``cls`` defines its own (idempotent)."""
    own = cls.__dict__.get("get_model")
    if callable(own) and not getattr(own, _MARK, False):
        cls.get_model = _wrap_get_model(own)  # type: ignore[attr-defined]


def _trainers(base: type) -> Iterator[type]:
    for sub in base.__subclasses__():
        yield sub
        yield from _trainers(sub)


def _patch_trainers() -> None:
    """Every trainer class, those defined later too (a user's own, a lazily imported task)."""
    from ultralytics.engine.trainer import BaseTrainer

    for cls in (BaseTrainer, *_trainers(BaseTrainer)):
        _wrap_trainer(cls)
    own = BaseTrainer.__dict__.get("__init_subclass__")
    if getattr(getattr(own, "__func__", own), _MARK, False):
        return

    def __init_subclass__(cls: type, **kwargs: Any) -> None:
        if own is not None:
            own.__func__(cls, **kwargs)
        else:
            super(BaseTrainer, cls).__init_subclass__(**kwargs)  # type: ignore[misc]
        _wrap_trainer(cls)

    setattr(__init_subclass__, _MARK, True)
    __init_subclass__.original = own  # type: ignore[attr-defined]  # for _unregister
    BaseTrainer.__init_subclass__ = classmethod(__init_subclass__)  # type: ignore[assignment]


def checkpoint_start(spec: RowSpec) -> CheckpointStart | None:
    """The checkpoint whose backbone Ultralytics will transfer into the model being built.

    Ultralytics rebuilds a model from its yaml for resume, fine-tuning and
    ``pretrained=`` inside a trainer's ``get_model(cfg, weights)`` (wrapped, see
    ``_patch_trainers``) and then loads ``weights`` into it. When ``weights`` holds an
    effzoo backbone of the same row (variant, multipliers, levels), that backbone is the
    start: nothing is fetched. Returns the checkpoint and what its backbone started from.
    """
    from .modules import BackboneStem, CheckpointStart

    weights = _REBUILDING.get()
    if weights is None:
        return None
    stem = next(
        (m for m in getattr(weights, "modules", list)() if isinstance(m, BackboneStem)), None
    )
    bb = getattr(stem, "backbone", None)
    same = bb is not None and (bb.spec.name, bb.width_mult, bb.depth_mult) == (
        spec.variant,
        spec.width,
        spec.depth,
    )
    if not same or tuple(bb.out_indices) != spec.out_indices:
        return None
    if getattr(bb, "fused", False):  # folded weights: Ultralytics could transfer few of them
        return None
    start = stem.provenance or "unrecorded (a checkpoint of effzoo 0.1)"  # type: ignore[union-attr]
    return CheckpointStart(str(getattr(weights, "pt_path", None) or "the loaded model"), start)


# -- generate_ddp_file: workers import effzoo.yolo ------------------------------------


def _wrap_generate_ddp_file(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def generate_ddp_file(*args: Any, **kwargs: Any) -> Any:
        file = original(*args, **kwargs)
        path = Path(file)
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        main = next((i for i, ln in enumerate(lines) if ln.startswith("if __name__")), None)
        if main is None or any("import effzoo.yolo" in ln for ln in lines):
            return file
        at = main + 1  # after the worker has set sys.path, if it does
        at = next((i + 1 for i, ln in enumerate(lines) if "sys.path = " in ln and i > main), at)
        lines.insert(at, "    import effzoo.yolo  # registers effzoo's yaml rows\n")
        path.write_text("".join(lines), encoding="utf-8")
        return file

    setattr(generate_ddp_file, _MARK, True)
    return generate_ddp_file


def _patches() -> tuple[tuple[Any, str, Callable[..., Any], str], ...]:
    """(owner, attribute, wrapper, seam) of every patch: the "replaces" rows of ``SEAMS``
    that name a wrapper here (the trainers' ``get_model`` is patched aside, per class)."""
    out = []
    for seam in SEAMS:
        if seam.patch:
            module, _, path = seam.owner.partition(":")
            owner, _, attr = path.rpartition(".")
            obj = seams._attr(f"{module}:{owner}")
            out.append((obj, attr, globals()[seam.patch], seam.name))
    return tuple(out)


def _patch_of(seam: str) -> tuple[Any, str]:
    return next((owner, name) for owner, name, _, s in _patches() if s == seam)


def _unpatch(owner: Any, name: str) -> None:
    current = getattr(owner, name, None)
    if getattr(current, _MARK, False):
        setattr(owner, name, current.__wrapped__)  # type: ignore[union-attr]


def register() -> None:
    """Make effzoo rows usable in Ultralytics yamls (idempotent; cheap: nothing is built).
    Checks the installed version, then patches what is there. The seams are checked when
    first needed (``ensure_contract``: the first effzoo row built; ``check_contract()``
    any time): a required seam that does not hold takes every patch back before the
    ``UltralyticsContractError``, an optional one degrades with one warning."""
    check_version()
    if registered():
        return
    for owner, name, wrap, _ in _patches():
        current = getattr(owner, name, None)
        if current is not None and not getattr(current, _MARK, False):
            setattr(owner, name, wrap(current))
    _patch_trainers()


def _unregister() -> None:
    """Take every patch back (a required seam that does not hold)."""
    from ultralytics.engine.trainer import BaseTrainer

    for owner, name, _, _ in _patches():
        _unpatch(owner, name)
    for cls in (BaseTrainer, *_trainers(BaseTrainer)):
        own = cls.__dict__.get("get_model")
        if getattr(own, _MARK, False):
            cls.get_model = own.__wrapped__  # type: ignore[attr-defined]
    hook = BaseTrainer.__dict__.get("__init_subclass__")
    if getattr(getattr(hook, "__func__", hook), _MARK, False):
        original = hook.__func__.original  # type: ignore[union-attr]
        if original is None:
            del BaseTrainer.__init_subclass__
        else:
            BaseTrainer.__init_subclass__ = original  # type: ignore[assignment]


# -- opt-in: offline fonts, no usage events ----------------------------------------


def local_font() -> Path | None:
    """A TrueType font that ships with matplotlib (a dependency of Ultralytics)."""
    try:
        import matplotlib
    except ImportError:  # pragma: no cover
        return None
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    return path if path.is_file() else None


def _wrap_check_font(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def check_font(font: str = "Arial.ttf") -> Any:
        from matplotlib import font_manager
        from ultralytics.utils import USER_CONFIG_DIR

        name = Path(font).name
        if (USER_CONFIG_DIR / name).exists() or Path(font).is_file():
            return original(font)
        if any(font in f.fname for f in font_manager.fontManager.ttflist):
            return original(font)
        return local_font()

    setattr(check_font, _MARK, True)
    return check_font


def quiet_ultralytics() -> None:
    """Plots use a local font instead of downloading Arial (``check_font`` is patched where
    it is imported), and this process sends no usage events; settings are not changed."""
    for where in (
        "ultralytics.utils.checks",
        "ultralytics.utils.plotting",
        "ultralytics.data.utils",
    ):
        module = importlib.import_module(where)
        fn = getattr(module, "check_font", None)
        if fn is not None and not getattr(fn, _MARK, False):
            module.check_font = _wrap_check_font(fn)
    for where in ("ultralytics.utils.events", "ultralytics.hub.utils"):  # newer, older
        try:
            tracker = getattr(importlib.import_module(where), "events", None)
        except ImportError:
            continue
        if tracker is not None and hasattr(tracker, "enabled"):
            tracker.enabled = False


__all__ = [
    "FLOOR",
    "SEAMS",
    "SUPPORTED",
    "Seam",
    "SeamDegradedWarning",
    "UltralyticsContractError",
    "check_contract",
    "check_version",
    "quiet_ultralytics",
    "register",
    "registered",
    "seam_report",
]
