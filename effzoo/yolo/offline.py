"""Keep Ultralytics from reaching for the network where effzoo runs it offline.

Ultralytics downloads Arial.ttf into its config dir the first time it draws a
label (dataset checks and plots). ``use_local_fonts()`` makes its font lookup
fall back to a font that is already on disk (matplotlib's DejaVu Sans) instead,
without a network request; a real Arial found locally is still preferred.
Set ``YOLO_OFFLINE=1`` before importing Ultralytics as well, so its online
checks and usage events are skipped.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

_MARK = "__effzoo_offline__"


def local_font() -> Path | None:
    """A TrueType font that ships with matplotlib (a dependency of Ultralytics)."""
    try:
        import matplotlib
    except ImportError:  # pragma: no cover
        return None
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    return path if path.is_file() else None


def _local_only(original: Callable[..., Any]) -> Callable[..., Any]:
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


def use_local_fonts() -> None:
    """Patch Ultralytics' ``check_font`` where it is used, so plots never download."""
    import ultralytics.data.utils as data_utils
    import ultralytics.utils.checks as checks
    import ultralytics.utils.plotting as plotting

    for module in (checks, plotting, data_utils):
        fn = getattr(module, "check_font", None)
        if fn is not None and not getattr(fn, _MARK, False):
            module.check_font = _local_only(fn)


def quiet_ultralytics() -> None:
    """Local fonts, and no usage events from this process (settings are not changed)."""
    import importlib

    use_local_fonts()
    for where in ("ultralytics.utils.events", "ultralytics.hub.utils"):  # newer, older
        try:
            tracker = getattr(importlib.import_module(where), "events", None)
        except ImportError:
            continue
        if tracker is not None and hasattr(tracker, "enabled"):
            tracker.enabled = False
