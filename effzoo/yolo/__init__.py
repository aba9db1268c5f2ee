"""effzoo inside Ultralytics YOLO: ``import effzoo.yolo`` and any model yaml may use
an EfficientNet row (``EfficientNet``, or the forked recipe's ``efficient`` and
``efficientnet_v2``). This package is the only part of effzoo that imports
Ultralytics; importing it registers the rows (see ``register``).
"""

from __future__ import annotations

from .cfg import cfg_path, list_cfgs, model_yaml
from .hooks import register, registered
from .modules import BackboneStages, BackboneStem, fold_backbones
from .rows import MODULE_NAMES, PretrainedUnavailableWarning, RowSpec, parse_row

register()

__all__ = [
    "MODULE_NAMES",
    "BackboneStages",
    "BackboneStem",
    "PretrainedUnavailableWarning",
    "RowSpec",
    "cfg_path",
    "fold_backbones",
    "list_cfgs",
    "model_yaml",
    "parse_row",
    "register",
    "registered",
]
