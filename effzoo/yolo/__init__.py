"""effzoo inside Ultralytics YOLO: ``import effzoo.yolo`` and any model yaml may use
an EfficientNet row (``EfficientNet``, or the forked recipe's ``efficient`` and
``efficientnet_v2``). This package is the only part of effzoo that imports
Ultralytics; importing it registers the rows (``register``, see ``patches``).
"""

from __future__ import annotations

from .compare import Comparison, compare
from .modules import BackboneStages, BackboneStem, fold_backbones
from .patches import check_contract, quiet_ultralytics, register, registered
from .rows import (
    MODULE_NAMES,
    PretrainedUnavailableWarning,
    RowSpec,
    YamlRepairedWarning,
    find_row,
    parse_row,
)
from .templates import MODELS, cfg_path, cfg_text, list_cfgs, model_yaml

register()

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
