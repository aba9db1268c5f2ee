"""The seams between effzoo and Ultralytics: what the patches (``patches``) rely on, each
declared required or optional in one table (``SEAMS``), and when it is checked: the
version at ``import effzoo.yolo`` (``check_version``), the seams at the first effzoo row a
process builds (``ensure_contract``: signatures and names every time, a behavioural probe
once per Ultralytics version, cached in ``yolo-seams.json``), never while a checkpoint
unpickles. A required seam that no longer holds takes every patch back and raises one
``UltralyticsContractError``; an optional one degrades with one ``SeamDegradedWarning``
(``DEGRADED`` says which; the patches read it). Commands in messages are double-quoted:
they work in cmd.exe, PowerShell and POSIX shells.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import json
import logging
import pkgutil
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
#: the smallest model with an effzoo row: built by ``_probe_rows`` through the patched
#: parser, on the meta device (nothing allocated), to check what the patches rely on
_PROBE_ROW = ["efficientnet_lite0", {"pretrained": False, "levels": [5]}]
_PROBE = {
    "nc": 2,
    "backbone": [[-1, 1, "EfficientNet", _PROBE_ROW]],
    "head": [[-1, 1, "Classify", [2]]],
}


def _older(version: str, floor: str) -> bool:
    """Whether release ``version`` comes before ``floor``, by Ultralytics' own version
    check (an unreadable version does not)."""
    from ultralytics.utils.checks import check_version as satisfies

    if not any(c.isdigit() for c in version):  # unreadable: left to the contract check
        return False
    return not satisfies(version, f">={floor}")


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
    """One internal of Ultralytics that effzoo replaces or reads: required (effzoo cannot
    build, train, fuse, export or run DDP right without it) or optional (logs, suggestions,
    what the applications read: it degrades with one warning). ``patch``: the wrapper in
    patches.py of a "replaces" row; ``check``: "" when it holds here, else what changed
    (signatures and the names its code uses: cheap, nothing built)."""

    name: str
    required: bool
    does: str
    owner: str
    effzoo: str = "reads"
    patch: str = ""
    check: Callable[[], str] = lambda: ""


def _attr(owner: str) -> Any:
    """The object ``module:a.b`` names (None where it is gone)."""
    try:
        return pkgutil.resolve_name(owner)
    except (ImportError, AttributeError):
        return None


def _has(*owners: str, what: str = "") -> Callable[[], str]:
    def check() -> str:
        gone = [o for o in owners if _attr(o) is None]
        plural = "is" if len(gone) == 1 else "are"
        return (what or f"{', '.join(gone)} {plural} gone") if gone else ""

    return check


def _parse_model() -> str:
    fn = _attr("ultralytics.nn.tasks:parse_model")
    fn = getattr(fn, "__wrapped__", fn)
    ok = callable(fn) and list(inspect.signature(fn).parameters)[:2] == ["d", "ch"]
    return "" if ok else "tasks.parse_model(d, ch, ...) changed its signature"


def _uses(owner: str, names: set[str], what: str) -> Callable[[], str]:
    def check() -> str:
        return "" if names <= _names(_attr(owner) or type) else what

    return check


def _get_model() -> str:
    fn = _attr("ultralytics.engine.trainer:BaseTrainer.get_model")
    ok = callable(fn) and "weights" in inspect.signature(fn).parameters
    return "" if ok else "trainers no longer rebuild models through get_model(cfg, weights)"


def _validator_stats() -> str:
    names = _names(_attr("ultralytics.models.yolo.detect.val:DetectionValidator") or type)
    ok = "stats" in names or "update_stats" in names
    return "" if ok else "the detection validator keeps no per-image stats"


#: every internal of Ultralytics effzoo replaces or reads, in one table: ``register()``
#: patches the "replaces" rows with a ``patch``, the contract check and ``effzoo env``
#: read the rest of it (docs/yolo.md, "Ultralytics seams", lists them)
SEAMS = (
    Seam("tasks.Index", True, "the placeholder module an effzoo row is built as",
         "ultralytics.nn.tasks:Index",
         check=_has("ultralytics.nn.tasks:Index", what="ultralytics.nn.tasks has no Index module")),
    Seam("tasks.parse_model", True, "builds effzoo rows; every yaml build goes through it "
         "(splice.py reads the original through the wrapper's __wrapped__)",
         "ultralytics.nn.tasks:parse_model", "replaces", "_wrap_parse_model", _parse_model),
    Seam("tasks.check_yaml", True, "resolves effzoo's model names to generated yamls",
         "ultralytics.nn.tasks:check_yaml", "replaces", "_wrap_check_yaml",
         _uses("ultralytics.nn.tasks:yaml_model_load", {"check_yaml"},
               "yaml_model_load no longer resolves files through tasks.check_yaml")),
    Seam("BaseModel.fuse", True, "folds effzoo backbones for predict, val and export",
         "ultralytics.nn.tasks:BaseModel.fuse", "replaces", "_wrap_fuse",
         _has("ultralytics.nn.tasks:BaseModel.fuse", what="BaseModel.fuse is gone")),
    Seam("Exporter.__call__", True, "static TF padding and NCHW weights in exports",
         "ultralytics.engine.exporter:Exporter.__call__", "replaces", "_wrap_export_call",
         _uses("ultralytics.engine.exporter:Exporter", {"dynamic", "fuse"},
               "the Exporter no longer fuses the model and reads self.args.dynamic")),
    Seam("get_model(cfg, weights)", True, "a checkpoint is its own start: nothing fetched",
         "ultralytics.engine.trainer:BaseTrainer.get_model (and every subclass)", "replaces",
         check=_get_model),
    Seam("dist.generate_ddp_file", True, "DDP workers import effzoo.yolo",
         "ultralytics.utils.dist:generate_ddp_file", "replaces", "_wrap_generate_ddp_file",
         _uses("ultralytics.utils.dist:generate_ddp_command", {"generate_ddp_file"},
               "the DDP launcher no longer writes its script through dist.generate_ddp_file")),
    Seam("model table", False, "the model table shows the backbone layers, not Index rows",
         "ultralytics.nn.tasks:LOGGER (parse_model's table lines)"),
    Seam("tasks.yaml_model_load", False, "a model file typed with a scale letter too many "
         "(yolo11nn-effb0.yaml) is effzoo's error, not the model without it",
         "ultralytics.nn.tasks:yaml_model_load", "replaces", "_wrap_yaml_model_load",
         _has("ultralytics.nn.tasks:yaml_model_load")),
    Seam("model.yaml_model_load", False, "the same, for YOLO('...yaml') (engine.model "
         "imports its own reference)", "ultralytics.engine.model:yaml_model_load", "replaces",
         "_wrap_yaml_model_load", _has("ultralytics.engine.model:yaml_model_load")),
    Seam("Model._load", False, "YOLO('yolo11n-efflite0') without .yaml: effzoo's suggestion",
         "ultralytics.engine.model:Model._load", "replaces", "_wrap_model_load",
         _has("ultralytics.engine.model:Model._load",
              what="ultralytics.engine.model.Model._load (weights files) is gone")),
    Seam("check_font", False, "plots use a font on disk, never download Arial "
         "(quiet_ultralytics: compare and the demo)",
         "ultralytics.utils.checks:check_font (where plotting and utils import it)",
         "replaces", check=_has("ultralytics.utils.checks:check_font")),
    Seam("events", False, "no usage events from this process (quiet_ultralytics)",
         "ultralytics.utils.events:events (ultralytics.hub.utils before 8.3.x)", "replaces",
         check=lambda: "" if _attr("ultralytics.utils.events:events") is not None
         or _attr("ultralytics.hub.utils:events") is not None else "events is gone"),
    Seam("validator stats", False, "compare's mAP intervals over validation images read "
         "the validator's per-image matches (else over seeds only)",
         "ultralytics.models.yolo.detect.val:DetectionValidator", check=_validator_stats),
    Seam("error origins", False, "Ultralytics' own refusals of user input are told from "
         "bugs by the function that raised (cli: select_device, check_imgsz, "
         "check_det_dataset, ...)", "ultralytics.utils.torch_utils:select_device, ...",
         check=_has("ultralytics.utils.torch_utils:select_device",
                    "ultralytics.utils.checks:check_imgsz",
                    "ultralytics.data.utils:check_det_dataset")),
    Seam("cfg checks", False, "compare checks train arguments and data as `yolo train` "
         "does (check_dict_alignment, check_cfg, parse_key_value_pair, verify_image_label)",
         "ultralytics.cfg", check=_has("ultralytics.cfg:check_dict_alignment",
                                       "ultralytics.cfg:check_cfg",
                                       "ultralytics.cfg:parse_key_value_pair",
                                       "ultralytics.data.utils:verify_image_label")),
)  # fmt: skip
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


def _static(*, reads: bool = True) -> list[Broken]:
    """The seams' signatures and the names their code uses (cheap; no model built).
    ``reads=False``: only what building a row needs (the seams effzoo replaces, and the
    required ones), as at the first row a process builds."""
    wanted = [s for s in SEAMS if reads or s.required or s.effzoo == "replaces"]
    return [Broken(seam.name, what) for seam in wanted if (what := seam.check())]


def _contract() -> list[Broken]:
    """The seams that do not hold (empty: all hold): the static checks, then, with the
    patches in place, ``_probe_rows`` checks the rest by doing it."""
    broken = _static()
    if not any(_SEAM[b.seam].required for b in broken) and registered():
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
    import ultralytics

    required = [b.what for b in broken if _SEAM[b.seam].required]
    if required:
        if take_back is not None and registered():
            take_back()
        raise UltralyticsContractError(
            f"effzoo.yolo does not support the installed Ultralytics {ultralytics.__version__}: "
            f"{'; '.join(required)}. Supported: ultralytics{SUPPORTED}; install a supported "
            f'release: pip install "ultralytics{SUPPORTED}"'
        )
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


def _verdicts(path: Path) -> dict[str, Any]:
    """The probe verdicts saved in ``path``, by ``_verdict_key()`` (empty if unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _cached_probe() -> list[Broken] | None:
    """The probe's verdict for this Ultralytics and effzoo, if an earlier process saved it."""
    from ..weights.verified import cache_dir

    try:
        entry = _verdicts(cache_dir() / VERDICT_NAME)[_verdict_key()]
        return [Broken(seam, what) for seam, what in entry if seam in _SEAM]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _save_probe(broken: list[Broken]) -> None:
    """Keep the verdict (optional seams only: a required failure is never cached)."""
    from .._atomic import write_json
    from ..weights.verified import cache_dir

    folder = cache_dir()
    path = folder / VERDICT_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
        data = _verdicts(path)
        data[_verdict_key()] = [list(b) for b in broken]
        write_json(path, data, indent=1)
    except OSError:  # a read-only cache: the probe runs again next time
        pass


def ensure_contract(*, take_back: Callable[[], None]) -> None:
    """The check at the first effzoo row built in a process (never on the checkpoint-loading
    path): the static checks every time, the probe once per Ultralytics version."""
    global _CHECKED
    if _CHECKED or getattr(_CHECK, "running", False):
        return
    with _checking():
        broken = _static(reads=False)
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
