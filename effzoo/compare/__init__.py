"""``effzoo compare``: an application on the YOLO adapter (effzoo.yolo). Candidate
detectors trained on the user's data with one budget, then measured where they will run.

``from effzoo.compare import compare`` (or, as before, ``from effzoo.yolo import
compare``) is the function; its parts: ``candidates`` (what a name means), ``runtimes``
(one record per runtime), ``train`` (one run: train, validate, export), ``timing`` (the
timing process), ``report`` (table, CSV, markdown, plot), ``core`` (the orchestration).
"""

from __future__ import annotations

from .candidates import Candidate
from .core import Comparison, compare
from .runtimes import DEFAULT_RUNTIMES, RUNTIMES, Runtime

__all__ = ["DEFAULT_RUNTIMES", "RUNTIMES", "Candidate", "Comparison", "Runtime", "compare"]
