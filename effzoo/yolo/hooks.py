"""Registration with stock Ultralytics: no fork, two wrapped functions.

- ``ultralytics.nn.tasks.parse_model`` (which every yaml build goes through, also
  resume and fine-tuning from a checkpoint's stored yaml): the effzoo row is
  replaced by one ``Index`` placeholder row per output level, whose channel count
  stock Ultralytics takes from the row's first arg (computed here from the
  registry). Stock code builds every other row untouched; the placeholders are
  then swapped for the backbone layers and the model table is printed as built.
- ``BaseModel.fuse``: folds the effzoo backbones (``Backbone.fuse``) before
  Ultralytics folds its own Conv/BN pairs.
- ``generate_ddp_file``: the script Ultralytics writes for its multi-GPU workers
  imports ``effzoo.yolo`` first, so a worker that builds the model from the yaml
  (older Ultralytics) or unpickles it (newer) has the rows registered.
- ``check_yaml`` as ``yaml_model_load`` sees it: a bare file name that is not on
  disk but is one of effzoo's shipped model yamls resolves to it, so
  ``YOLO("yolo11n-effv2s.yaml")`` works from any directory (scale ``n``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import InvalidArgumentError
from .modules import fold_backbones
from .rows import RowSpec, build_layers, is_effzoo_row, parse_row

_MARK = "__effzoo__"


def _scale(d: dict[str, Any]) -> tuple[float, float]:
    """(width, depth) multiples of the yaml's scale, as stock parse_model picks them."""
    scales = d.get("scales")
    if scales:
        key = d.get("scale") or next(iter(scales))
        if key in scales:
            depth, width, *_ = scales[key]
            return float(width), float(depth)
    return float(d.get("width_multiple", 1.0)), float(d.get("depth_multiple", 1.0))


def _where(d: dict[str, Any], section: str, index: int, row: Any) -> str:
    name = d.get("yaml_file") or "model yaml"
    return f"{name}, {section} row {index} {list(row)}"


def find_rows(d: dict[str, Any]) -> RowSpec | None:
    """Parse the effzoo row of a model dict, if any; misplaced rows raise."""
    width, depth = _scale(d)
    found: RowSpec | None = None
    for section in ("backbone", "head"):
        for index, row in enumerate(d.get(section) or []):
            if not is_effzoo_row(row):
                continue
            where = _where(d, section, index, row)
            if section != "backbone" or index != 0:
                raise InvalidArgumentError(
                    f"{where}: an effzoo row must be the first row of the backbone "
                    "(it reads the image and occupies one index per output level)"
                )
            found = parse_row(row, where=where, scale_width=width, scale_depth=depth)
    return found


class _TableRewrite(logging.Filter):
    """Replace stock's model-table lines for the placeholder rows with the real layers."""

    def __init__(self, lines: dict[int, str]) -> None:
        super().__init__()
        self.lines = lines

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        for i, line in self.lines.items():
            if msg.startswith(f"{i:>3}{-1!s:>20}") and "Index" in msg:
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


def _type_name(obj: object) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _wrap_parse_model(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def parse_model(d: dict[str, Any], ch: int, *args: Any, **kwargs: Any) -> Any:
        spec = find_rows(d)
        if spec is None:
            return original(d, ch, *args, **kwargs)
        from ultralytics.nn import tasks

        if not hasattr(tasks, "Index"):
            raise InvalidArgumentError(
                "this Ultralytics has no Index module, which effzoo rows need; "
                "upgrade it: pip install -U 'effzoo[yolo]'"
            )
        layers = build_layers(spec, in_chans=int(ch))
        chans = list(layers[0].backbone.out_channels)
        d = dict(d)
        d["backbone"] = [[-1, 1, "Index", [c, 0]] for c in chans] + list(d["backbone"][1:])
        lines = {}
        for i, (layer, c) in enumerate(zip(layers, chans)):
            n_params = sum(p.numel() for p in layer.parameters())
            info = f"{spec.variant} P{layer.level} ({c} ch)"
            lines[i] = f"{i:>3}{-1!s:>20}{1:>3}{n_params:10.0f}  {_type_name(layer):<45}{info:<30}"
        with _rewrite_table(tasks.LOGGER, lines):
            model, save = original(d, ch, *args, **kwargs)
        for i, layer in enumerate(layers):
            layer.i, layer.f, layer.type = i, -1, _type_name(layer)
            layer.np = sum(p.numel() for p in layer.parameters())
            # Eval until the model is put in train mode: older Ultralytics probes the
            # strides with a forward pass in train mode, which would pull the pretrained
            # batch-norm statistics towards those of an all-zero image.
            model[i] = layer.eval()
        return model, save

    setattr(parse_model, _MARK, True)
    return parse_model


def _wrap_fuse(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def fuse(self: Any, *args: Any, **kwargs: Any) -> Any:
        fold_backbones(self)
        return original(self, *args, **kwargs)

    setattr(fuse, _MARK, True)
    return fuse


def _wrap_check_yaml(original: Callable[..., Any]) -> Callable[..., Any]:
    from .cfg import CFG_DIR

    @functools.wraps(original)
    def check_yaml(file: Any, *args: Any, **kwargs: Any) -> Any:
        path = Path(str(file))
        shipped = CFG_DIR / path.name
        if len(path.parts) == 1 and not path.exists() and shipped.is_file():
            return str(shipped)
        return original(file, *args, **kwargs)

    setattr(check_yaml, _MARK, True)
    return check_yaml


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


def register() -> None:
    """Make effzoo rows usable in Ultralytics yamls (idempotent)."""
    from ultralytics.nn import tasks
    from ultralytics.utils import dist

    if not getattr(dist.generate_ddp_file, _MARK, False):
        dist.generate_ddp_file = _wrap_generate_ddp_file(dist.generate_ddp_file)
    if not getattr(tasks.check_yaml, _MARK, False):
        tasks.check_yaml = _wrap_check_yaml(tasks.check_yaml)
    if not getattr(tasks.parse_model, _MARK, False):
        tasks.parse_model = _wrap_parse_model(tasks.parse_model)
    if not getattr(tasks.BaseModel.fuse, _MARK, False):
        tasks.BaseModel.fuse = _wrap_fuse(tasks.BaseModel.fuse)


def registered() -> bool:
    """Whether ``register()`` is in effect in this process."""
    from ultralytics.nn import tasks

    return bool(getattr(tasks.parse_model, _MARK, False))
