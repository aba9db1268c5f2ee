"""Every change effzoo makes to Ultralytics, in one place, applied by ``register()``.

Which attributes are replaced, and by which ``_wrap_*`` of this module, is read from the
one seam table (``seams.SEAMS``), where each seam is declared and checked. Every wrapper
is marked, so registering twice changes nothing; what one knows reaches the code it calls
through a context variable (the checkpoint a trainer rebuilds for) or a thread-local (the
running exporter). Registering costs almost nothing (no timm import, nothing built).

Each build of a model with an effzoo row logs one line through Ultralytics' LOGGER: what
the backbone starts from (the first layer's ``provenance``, saved in the checkpoint).
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


def _marked(original: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``functools.wraps(original)``, and effzoo's mark (nothing is wrapped twice)."""

    def decorate(wrapper: Callable[..., Any]) -> Callable[..., Any]:
        functools.update_wrapper(wrapper, original)
        setattr(wrapper, _MARK, True)
        return wrapper

    return decorate


# -- parse_model: effzoo rows -------------------------------------------------------


@contextlib.contextmanager
def _rewrite_table(logger: logging.Logger, lines: dict[int, str]) -> Iterator[None]:
    """Stock's model-table lines for the placeholder rows show the real layers instead."""

    def rewrite(record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        for i, line in lines.items():
            if msg.startswith(_table_start(i)) and "Index" in msg:
                record.msg, record.args = line, ()
        return True

    logger.addFilter(rewrite)
    try:
        yield
    finally:
        logger.removeFilter(rewrite)


def _wrap_parse_model(original: Callable[..., Any]) -> Callable[..., Any]:
    """An effzoo row becomes one ``Index`` placeholder per output level, stock code builds
    the rest, then the placeholders are swapped for the backbone layers."""

    @_marked(original)
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
        size = f" x{spec.width:g}/{spec.depth:g}" if (spec.width, spec.depth) != (1, 1) else ""
        lines = {}
        for i, (layer, c) in enumerate(zip(layers, chans)):
            info = f"{spec.variant}{size} P{layer.level} ({c} ch)"
            n_params = count_params(layer)
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

    return parse_model


# -- BaseModel.fuse and Exporter.__call__: folded, NCHW, constant padding ------------

#: per thread: the Ultralytics exporter running, if any
_EXPORT = threading.local()
#: formats whose converter or runtime mishandles a ``Pad`` before a convolution: their
#: static exports pad symmetrically by growing kernels (Paddle Inference 3.2.2 aborts)
SYMMETRIC_PAD_FORMATS = frozenset({"paddle"})


def _wrap_fuse(original: Callable[..., Any]) -> Callable[..., Any]:
    """The effzoo backbones are folded first; inside an export, made contiguous NCHW."""

    @_marked(original)
    def fuse(self: Any, *args: Any, **kwargs: Any) -> Any:
        from ..fuse import contiguous_weights
        from .modules import fold_backbones

        fold_backbones(self)
        exporter = getattr(_EXPORT, "exporter", None)
        if exporter is not None:  # the exporter's own copy of the model
            contiguous_weights(self)
            fmt = str(exporter.args.format).lower()
            if fmt in SYMMETRIC_PAD_FORMATS and not exporter.args.dynamic:
                _symmetric_pads(self, kwargs.get("imgsz", args[1] if len(args) > 1 else None))
        return original(self, *args, **kwargs)

    return fuse


def _symmetric_pads(model: Any, imgsz: Any) -> None:
    import torch

    from ..fuse import symmetric_padding_at

    if imgsz is None:
        return
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else tuple(imgsz)[-2:]
    ch = int(getattr(model, "yaml", {}).get("channels", 3))
    symmetric_padding_at(model, torch.zeros(1, ch, int(h), int(w)))


def _wrap_export_call(original: Callable[..., Any]) -> Callable[..., Any]:
    """With ``dynamic=False`` (the default), TF "same" padding is traced as constants: no
    simplifier or converter has to get shape-dependent asymmetric padding right (onnxslim
    0.1.98 does not: docs/deploy.md); MNN's converter installs nothing (``converters``)."""

    @_marked(original)
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

    return __call__


# -- check_yaml, yaml_model_load, Model._load: effzoo's model names --------------------


def _bare_name(file: Any) -> str | None:
    """The name of ``file`` when it is a bare name (no folder) that is not on disk."""
    path = Path(str(file))
    return path.name if len(path.parts) == 1 and not path.exists() else None


def _misnamed(file: Any) -> None:
    """A bare name that is not a file and means an effzoo model name spelt otherwise
    (``.yaml`` missing, ``.yml``, another case): one effzoo error naming the right one."""
    from . import templates

    name = _bare_name(file)
    meant = None if name is None else templates.suggest_name(name)
    if meant is not None:
        raise InvalidArgumentError(
            f"no model file {name!r}; did you mean effzoo's {meant!r}? (effzoo's model "
            "names end in .yaml; `effzoo yolo --help` lists them)"
        )


def _names_a_backbone(name: str) -> bool:
    """Whether a bare ``name`` that is not a file, not one of effzoo's model names and not
    a stock Ultralytics one means an effzoo model (``yolo11nn-effb0.yaml``)."""
    from ultralytics.utils.checks import check_yaml  # Ultralytics' own, not the wrapper

    from . import templates

    bare = _bare_name(name)
    if bare is None or templates.is_model_name(bare):
        return False
    return templates.suggest_name(bare) is not None and not check_yaml(name, hard=False)


def _wrap_yaml_model_load(original: Callable[..., Any]) -> Callable[..., Any]:
    """The model file as typed, before Ultralytics retries it without its scale letter
    (``yolo11nn-effb0.yaml`` would load as ``yolo11n-effb0.yaml``; 8.3.x tries the
    shorter name first): a name that means an effzoo model gets effzoo's error."""

    @_marked(original)
    def yaml_model_load(path: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(path, (str, Path)) and _names_a_backbone(str(path)):
            _misnamed(path)
        return original(path, *args, **kwargs)

    return yaml_model_load


def _wrap_check_yaml(original: Callable[..., Any]) -> Callable[..., Any]:
    """An effzoo model name that is not a file on disk resolves to a generated yaml."""

    @_marked(original)
    def check_yaml(file: Any, *args: Any, **kwargs: Any) -> Any:
        from . import templates

        name = _bare_name(file)
        if name is not None and templates.is_model_name(name):
            return str(templates.cfg_path(name))
        try:
            return original(file, *args, **kwargs)
        except FileNotFoundError:
            _misnamed(file)
            raise

    return check_yaml


def _wrap_model_load(original: Callable[..., Any]) -> Callable[..., Any]:
    """``YOLO("yolo11n-efflite0")`` (no suffix) is taken for a weights file to download;
    a name that means an effzoo model name gets the effzoo error instead."""

    @_marked(original)
    def _load(self: Any, weights: Any, *args: Any, **kwargs: Any) -> Any:
        degraded = "Model._load" in seams.DEGRADED
        if not degraded and isinstance(weights, str) and not Path(weights).suffix:
            _misnamed(weights)
        return original(self, weights, *args, **kwargs)

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

    @_marked(original)
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
    """Wrap ``get_model`` of every trainer class, also those defined later (a user's own, a
    lazily imported task) through ``BaseTrainer.__init_subclass__``."""
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
    """The checkpoint whose backbone Ultralytics will transfer into the model being built:
    for resume, fine-tuning and ``pretrained=``, a trainer's ``get_model(cfg, weights)``
    rebuilds the model from its yaml, then loads ``weights`` into it. When they hold an
    effzoo backbone of the same row (variant, multipliers, levels), that is the start:
    nothing is fetched. Returns the checkpoint and what its backbone started from."""
    from .modules import BackboneStem, CheckpointStart

    weights = _REBUILDING.get()
    if weights is None:
        return None
    stem = next(
        (m for m in getattr(weights, "modules", list)() if isinstance(m, BackboneStem)), None
    )
    bb = getattr(stem, "backbone", None)
    if bb is None or getattr(bb, "fused", False):  # folded: Ultralytics could transfer few
        return None
    row = (spec.variant, spec.width, spec.depth, spec.out_indices)
    if (bb.spec.name, bb.width_mult, bb.depth_mult, tuple(bb.out_indices)) != row:
        return None
    start = stem.provenance or "unrecorded (a checkpoint of effzoo 0.1)"  # type: ignore[union-attr]
    return CheckpointStart(str(getattr(weights, "pt_path", None) or "the loaded model"), start)


# -- generate_ddp_file, and register() applying every patch --------------------------


def _wrap_generate_ddp_file(original: Callable[..., Any]) -> Callable[..., Any]:
    """The script of multi-GPU workers imports ``effzoo.yolo``: they have the rows too."""

    @_marked(original)
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


def register() -> None:
    """Make effzoo rows usable in Ultralytics yamls (idempotent; cheap: nothing is built):
    the installed version checked, then every patch applied (its seams are checked when
    first needed: ``seams.ensure_contract``)."""
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
        current = getattr(owner, name, None)
        if getattr(current, _MARK, False):
            setattr(owner, name, current.__wrapped__)  # type: ignore[union-attr]
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
    """A font on disk (the user's, a system one, else ``local_font()``), never a download."""

    @_marked(original)
    def check_font(font: str = "Arial.ttf") -> Any:
        from matplotlib import font_manager
        from ultralytics.utils import USER_CONFIG_DIR

        on_disk = (USER_CONFIG_DIR / Path(font).name).exists() or Path(font).is_file()
        if on_disk or any(font in f.fname for f in font_manager.fontManager.ttflist):
            return original(font)
        return local_font()

    return check_font


def quiet_ultralytics() -> None:
    """Opt-in, for offline runs (``effzoo demo``, ``effzoo compare``): plots use a local
    font instead of downloading Arial (``check_font`` is patched where it is imported),
    and this process sends no usage events; settings are not changed."""
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
