"""The seams between effzoo and Ultralytics: what the patches (``patches``) rely on,
each declared required or optional (``SEAMS``), and when and how it is checked.

``check_version()`` runs at ``import effzoo.yolo``: an Ultralytics older than ``FLOOR``
is refused with one ``UltralyticsContractError`` naming the installed and the required
versions and the command that upgrades it. The seams are checked when first needed, at
the first effzoo row a process builds (``ensure_contract``): the signatures and names
every time (cheap), the behavioural probe (``_probe_rows``) once per Ultralytics
version, its verdict cached in effzoo's cache directory (``yolo-seams.json``); never
while a checkpoint unpickles. A required seam that no longer holds takes every patch
back and raises one ``UltralyticsContractError`` naming the installed version and the
supported range; an optional one degrades with one ``SeamDegradedWarning`` (``DEGRADED``
says which, the patches read it). ``check_contract()`` checks every seam now, without
the cache; ``seam_report()`` says the same in one line (``effzoo env``). (Every command
a message suggests is quoted with double quotes: they work in cmd.exe, PowerShell and
POSIX shells alike.)
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import logging
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from .._version import __version__
from ..errors import UltralyticsContractError

_MARK = "__effzoo__"
#: the oldest Ultralytics release the YOLO tests pass on, measured with scripts/compat.sh
#: (docs/yolo.md, "Ultralytics versions"); 8.3.0-8.3.58 lack the ``Index`` module the
#: rows become
FLOOR = "8.3.59"
#: the Ultralytics releases the adapter supports (pyproject's ``yolo`` extra says the same)
SUPPORTED = f">={FLOOR}"
#: the smallest model with an effzoo row: built at ``register()`` through the patched
#: parser, on the meta device (nothing allocated), to check what the patches rely on
_PROBE_ROW = ["efficientnet_lite0", {"pretrained": False, "levels": [5]}]
_PROBE = {
    "nc": 2,
    "backbone": [[-1, 1, "EfficientNet", _PROBE_ROW]],
    "head": [[-1, 1, "Classify", [2]]],
}


def _release(version: str) -> tuple[int, ...] | None:
    """The release numbers of ``version`` ("8.3.59rc1" -> (8, 3, 59)); None if unreadable.
    (packaging is a dependency of huggingface_hub, hence always there.)"""
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version).release
    except InvalidVersion:
        return None


def _older(version: str, floor: str) -> bool:
    """Whether release ``version`` comes before ``floor`` (an unreadable one does not)."""
    have, need = _release(version), _release(floor)
    if have is None or need is None:
        return False

    def pad(t: tuple[int, ...]) -> tuple[int, ...]:
        return t + (0,) * (3 - len(t))

    return pad(have) < pad(need)


def check_version() -> None:
    """Raise ``UltralyticsContractError`` if the installed Ultralytics is older than ``FLOOR``."""
    import ultralytics

    installed = str(getattr(ultralytics, "__version__", "unknown"))
    if _older(installed, FLOOR):
        raise UltralyticsContractError(
            f"effzoo.yolo needs Ultralytics >= {FLOOR}, this environment has {installed}: "
            f'upgrade it: pip install -U "ultralytics>={FLOOR}"'
        )


def _names(obj: Any) -> set[str]:
    """Every global and attribute name the code of ``obj`` uses: a function's, or every
    method's of a class (nested code too; of the original where effzoo wrapped one)."""
    found: set[str] = set()
    funcs = list(vars(obj).values()) if isinstance(obj, type) else [obj]
    codes = [getattr(getattr(f, "__wrapped__", f), "__code__", None) for f in funcs]
    while codes:
        code = codes.pop()
        if code is not None:
            found.update(code.co_names)
            codes.extend(c for c in code.co_consts if hasattr(c, "co_names"))
    return found


@contextlib.contextmanager
def _swallowed(logger: logging.Logger, lines: list[str]) -> Iterator[None]:
    """Every line ``logger`` would show (after its filters) is appended to ``lines``
    instead, whatever level and logging switches the user set."""

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    saved = logger.handlers, logger.propagate, logger.level, logging.root.manager.disable
    logger.handlers, logger.propagate = [Capture()], False
    logger.setLevel(logging.INFO)
    logging.disable(logging.NOTSET)
    try:
        yield
    finally:
        logger.handlers, logger.propagate = saved[0], saved[1]
        logger.setLevel(saved[2])
        logging.disable(saved[3])


@dataclass(frozen=True)
class Seam:
    """One internal of Ultralytics that effzoo patches or relies on. A required one:
    effzoo cannot build, train, fuse, export or run DDP right without it; an optional one
    (logs, suggestions) degrades with one warning and everything else works."""

    name: str
    required: bool
    does: str


#: every seam (docs/yolo.md lists them, with the count before and after issue 28)
SEAMS = (
    Seam("tasks.Index", True, "the placeholder module an effzoo row is built as"),
    Seam("tasks.parse_model", True, "builds effzoo rows; every yaml build goes through it"),
    Seam("tasks.check_yaml", True, "resolves effzoo's model names to generated yamls"),
    Seam("BaseModel.fuse", True, "folds effzoo backbones for predict, val and export"),
    Seam("Exporter.__call__", True, "static TF padding and NCHW weights in exports"),
    Seam("get_model(cfg, weights)", True, "a checkpoint is its own start: nothing fetched"),
    Seam("dist.generate_ddp_file", True, "DDP workers import effzoo.yolo"),
    Seam("model table", False, "the model table shows the backbone layers, not Index rows"),
    Seam("Model._load", False, "YOLO('yolo11n-efflite0') without .yaml: effzoo's suggestion"),
)
_SEAM = {seam.name: seam for seam in SEAMS}


class Broken(NamedTuple):
    """A seam that no longer holds, and how it shows."""

    seam: str
    what: str


def _probe_rows() -> list[Broken]:
    """What the patches rely on, checked by doing it: build ``_PROBE`` (an effzoo row)
    through the patched parser on the meta device, then rebuild it for that model as a
    trainer rebuilds for a checkpoint (``get_model(cfg, weights)``). Returns what does
    not hold (empty: all holds); nothing is logged or allocated."""
    import torch
    from ultralytics.cfg import get_cfg
    from ultralytics.models.yolo.classify import ClassificationTrainer
    from ultralytics.nn import tasks

    from .modules import BackboneStem

    lines: list[str] = []
    broken = []
    with _swallowed(_logger(), lines), torch.device("meta"), _checking():
        try:
            model = tasks.ClassificationModel(copy.deepcopy(_PROBE), ch=3, verbose=True)
            built, why = isinstance(model.model[0], BackboneStem), ""
        except Exception as e:  # named in the message: what a bug report needs
            built, why = False, f" (the probe build raised {_raised(e)})"
        if not built:
            what = f"models are no longer built through tasks.parse_model{why}"
            return [Broken("tasks.parse_model", what)]
        stem = _type_name(model.model[0])
        if not any(ln.startswith(_table_start(0)) and stem in ln for ln in lines):
            broken.append(Broken("model table", "parse_model's model-table line changed"))
        trainer = object.__new__(ClassificationTrainer)  # only what get_model reads
        trainer.args, trainer.data, trainer.resume = get_cfg(), {"nc": 2, "channels": 3}, False
        try:
            again = trainer.get_model(cfg=copy.deepcopy(_PROBE), weights=model, verbose=False)
            start, why = getattr(again.model[0].provenance, "start", None), ""
        except Exception as e:
            start, why = None, f" (the probe rebuild raised {_raised(e)})"
    if start != "checkpoint":
        what = f"trainers no longer rebuild models through get_model(cfg, weights){why}"
        broken.append(Broken("get_model(cfg, weights)", what))
    return broken


def _raised(e: Exception) -> str:
    text = str(e).splitlines()[0][:120] if str(e) else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _static() -> list[Broken]:
    """The seams' signatures and the names their code uses (cheap; no model built)."""
    from ultralytics.engine import exporter, model
    from ultralytics.engine.trainer import BaseTrainer
    from ultralytics.nn import tasks
    from ultralytics.utils import dist

    parse_model = getattr(tasks, "parse_model", None)
    parse_model = getattr(parse_model, "__wrapped__", parse_model)
    trainer_get_model = getattr(BaseTrainer, "get_model", None)
    checks = [
        ("tasks.Index", hasattr(tasks, "Index"), "ultralytics.nn.tasks has no Index module"),
        (
            "tasks.parse_model",
            callable(parse_model)
            and list(inspect.signature(parse_model).parameters)[:2] == ["d", "ch"],
            "tasks.parse_model(d, ch, ...) changed its signature",
        ),
        (
            "tasks.check_yaml",
            "check_yaml" in _names(getattr(tasks, "yaml_model_load", None)),
            "yaml_model_load no longer resolves files through tasks.check_yaml",
        ),
        (
            "BaseModel.fuse",
            callable(getattr(tasks.BaseModel, "fuse", None)),
            "BaseModel.fuse is gone",
        ),
        (
            "Exporter.__call__",
            {"dynamic", "fuse"} <= _names(getattr(exporter, "Exporter", type)),
            "the Exporter no longer fuses the model and reads self.args.dynamic",
        ),
        (
            "get_model(cfg, weights)",
            callable(trainer_get_model)
            and "weights" in inspect.signature(trainer_get_model).parameters,
            "trainers no longer rebuild models through get_model(cfg, weights)",
        ),
        (
            "dist.generate_ddp_file",
            "generate_ddp_file" in _names(getattr(dist, "generate_ddp_command", None)),
            "the DDP launcher no longer writes its script through dist.generate_ddp_file",
        ),
        (
            "Model._load",
            callable(getattr(model.Model, "_load", None)),
            "ultralytics.engine.model.Model._load (weights files) is gone",
        ),
    ]
    return [Broken(seam, what) for seam, ok, what in checks if not ok]


def _contract(*, probe: bool = True) -> list[Broken]:
    """The seams that do not hold (empty: all hold): the static checks, then, with the
    patches in place, ``_probe_rows`` checks the rest by doing it."""
    broken = _static()
    if probe and not any(_SEAM[b.seam].required for b in broken) and registered():
        broken += _probe_rows()
    return broken


def check_contract() -> None:
    """Check every seam now (no cached verdict): ``UltralyticsContractError`` if a
    required one no longer holds; an optional one that does not degrades (one warning)."""
    _settle(_contract(), take_back=None)


def seam_report() -> str:
    """The seams checked now, without the cached verdict, in one line (``effzoo env``)."""
    import ultralytics

    broken = _contract()
    required = [b for b in broken if _SEAM[b.seam].required]
    optional = [b for b in broken if not _SEAM[b.seam].required]
    n_req = sum(seam.required for seam in SEAMS)
    head = f"Ultralytics {ultralytics.__version__}: "
    if not broken:
        return head + f"all {len(SEAMS)} hold ({n_req} required, {len(SEAMS) - n_req} optional)"
    parts = [f"REQUIRED {b.seam!r} does not hold ({b.what})" for b in required]
    parts += [f"optional {b.seam!r} degraded ({b.what})" for b in optional]
    return head + "; ".join(parts)


def _settle(broken: list[Broken], *, take_back: Callable[[], None] | None) -> None:
    """Refuse on a required seam (``take_back`` first: every patch taken back); degrade,
    with one warning each, on optional ones."""
    required = [b.what for b in broken if _SEAM[b.seam].required]
    if required:
        if take_back is not None and registered():
            take_back()
        _refuse(required)
    for b in broken:
        _degrade(b)


#: optional seams switched off in this process (``_degrade``)
DEGRADED: set[str] = set()


class SeamDegradedWarning(UserWarning):
    """An optional seam of Ultralytics no longer matches; effzoo works without it."""


def _degrade(b: Broken) -> None:
    import ultralytics

    if b.seam in DEGRADED:
        return
    DEGRADED.add(b.seam)
    warnings.warn(
        f"effzoo: the optional Ultralytics seam {b.seam!r} does not match Ultralytics "
        f"{ultralytics.__version__} ({b.what}); effzoo works without it, only this is "
        f"lost: {_SEAM[b.seam].does}",
        SeamDegradedWarning,
        stacklevel=4,
    )


def _refuse(broken: list[str]) -> None:
    import ultralytics

    if broken:
        raise UltralyticsContractError(
            f"effzoo.yolo does not support the installed Ultralytics {ultralytics.__version__}: "
            f"{'; '.join(broken)}. Supported: ultralytics{SUPPORTED}; install a supported "
            f'release: pip install "ultralytics{SUPPORTED}"'
        )


# -- when the check runs: at the first effzoo row, once per Ultralytics version ------

#: per process: the check has run (or is running: the probe builds an effzoo row too)
_CHECK = threading.local()
_CHECKED = False
VERDICT_NAME = "yolo-seams.json"


@contextlib.contextmanager
def _checking() -> Iterator[None]:
    before = getattr(_CHECK, "running", False)
    _CHECK.running = True
    try:
        yield
    finally:
        _CHECK.running = before


def _verdict_key() -> str:
    import ultralytics

    where = Path(ultralytics.__file__).parent
    return f"ultralytics {ultralytics.__version__} at {where}; effzoo {__version__}"


def _cached_probe() -> list[Broken] | None:
    """The probe's verdict for this Ultralytics and effzoo, if an earlier process saved it."""
    import json

    from ..weights.verified import cache_dir

    try:
        data = json.loads((cache_dir() / VERDICT_NAME).read_text(encoding="utf-8"))
        entry = data[_verdict_key()]
        return [Broken(seam, what) for seam, what in entry if seam in _SEAM]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _save_probe(broken: list[Broken]) -> None:
    """Keep the verdict (optional seams only: a required failure is never cached)."""
    import json

    from .._atomic import write_json
    from ..weights.verified import cache_dir

    folder = cache_dir()
    path = folder / VERDICT_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            data = data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            data = {}
        data[_verdict_key()] = [list(b) for b in broken]
        write_json(path, data, indent=1)
    except OSError:  # a read-only cache: the probe runs again next time
        pass


def ensure_contract(*, take_back: Callable[[], None]) -> None:
    """The check, when first needed (the first effzoo row built in a process): the static
    checks every time, the probe once per Ultralytics version (its verdict is cached in
    effzoo's cache directory). Never on the checkpoint-loading path."""
    global _CHECKED
    if _CHECKED or getattr(_CHECK, "running", False):
        return
    with _checking():
        broken = _static()
        if not any(_SEAM[b.seam].required for b in broken):
            probed = _cached_probe()
            if probed is None:
                probed = _probe_rows()
                if not any(_SEAM[b.seam].required for b in probed):
                    _save_probe(probed)
            broken += probed
        _settle(broken, take_back=take_back)
    _CHECKED = True


def _table_start(i: int) -> str:
    """How stock's model-table line for layer ``i`` of a row ``[-1, ...]`` starts."""
    return f"{i:>3}{-1!s:>20}"


def _logger() -> logging.Logger:
    """The logger stock parse_model writes the model table to."""
    from ultralytics.nn import tasks
    from ultralytics.utils import LOGGER

    return getattr(tasks, "LOGGER", LOGGER)


def _type_name(obj: object) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def registered() -> bool:
    """Whether ``register()`` is in effect in this process."""
    from ultralytics.nn import tasks

    return bool(getattr(tasks.parse_model, _MARK, False))
