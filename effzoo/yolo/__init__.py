"""effzoo inside Ultralytics YOLO: ``import effzoo.yolo`` and any model yaml may use
an EfficientNet row (``EfficientNet``, or the forked recipe's ``efficient`` and
``efficientnet_v2``). This package is the only part of effzoo that imports
Ultralytics; importing it registers the rows (``register``, see ``patches``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .patches import check_contract, quiet_ultralytics, register, registered

if TYPE_CHECKING:
    from .modules import BackboneStages, BackboneStem, fold_backbones
    from .rows import (
        MODULE_NAMES,
        PretrainedUnavailableWarning,
        RowSpec,
        YamlRepairedWarning,
        find_row,
        parse_row,
    )
    from .templates import MODELS, cfg_path, cfg_text, list_cfgs, model_yaml

#: imported on first use: ``import effzoo.yolo`` (which unpickling a checkpoint runs)
#: registers the rows and imports neither timm nor effzoo's model code
_LAZY = {
    **dict.fromkeys(("BackboneStages", "BackboneStem", "fold_backbones"), "effzoo.yolo.modules"),
    **dict.fromkeys(
        (
            "MODULE_NAMES",
            "PretrainedUnavailableWarning",
            "RowSpec",
            "YamlRepairedWarning",
            "find_row",
            "parse_row",
        ),
        "effzoo.yolo.rows",
    ),
    # the compare application (effzoo.compare), kept here for the code that imported it so
    **dict.fromkeys(("Comparison", "compare"), "effzoo.compare"),
    **dict.fromkeys(
        ("MODELS", "cfg_path", "cfg_text", "list_cfgs", "model_yaml"), "effzoo.yolo.templates"
    ),
}

register()


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'effzoo.yolo' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "MODELS",
    "MODULE_NAMES",
    "BackboneStages",
    "BackboneStem",
    "Comparison",
    "PretrainedUnavailableWarning",
    "RowSpec",
    "YamlRepairedWarning",
    "cfg_path",
    "cfg_text",
    "check_contract",
    "compare",
    "find_row",
    "fold_backbones",
    "list_cfgs",
    "model_yaml",
    "parse_row",
    "quiet_ultralytics",
    "register",
    "registered",
]
