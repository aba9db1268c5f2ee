"""effzoo's environment variables, in one place: each one's name, what it sets, and how
its value is read (``value``). The modules that use one import its name from here;
``effzoo env`` lists them all with their values."""

from __future__ import annotations

import os

WEIGHTS = "EFFZOO_WEIGHTS"
CACHE = "EFFZOO_CACHE"
HUB_TIMEOUT = "EFFZOO_HUB_TIMEOUT"
MAX_PTH_BYTES = "EFFZOO_MAX_PTH_BYTES"
DEBUG = "EFFZOO_DEBUG"

#: every variable effzoo reads, and what it sets
VARIABLES = {
    WEIGHTS: "store directories searched first for weights (os.pathsep-separated)",
    CACHE: "effzoo's own cache directory (default $XDG_CACHE_HOME/effzoo)",
    HUB_TIMEOUT: "the overall deadline of a Hub download, seconds (default: per request)",
    MAX_PTH_BYTES: "what a .pth/.pt weights file may inflate to, bytes",
    DEBUG: "1: a command shows the traceback of any error instead of one line",
}


def value(name: str) -> str:
    """The variable's value, stripped; "" when unset."""
    assert name in VARIABLES, name
    return os.environ.get(name, "").strip()
