"""``effzoo yolo ARGS...``: the Ultralytics CLI with effzoo registered.

Arguments are Ultralytics' own (``effzoo yolo train model=yolo11n-effv2s.yaml
data=coco8.yaml``). effzoo's shipped model yamls resolve by file name.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ultralytics.cfg.entrypoint`` on ``argv`` with effzoo registered."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from ultralytics.cfg import entrypoint

    import effzoo.yolo  # noqa: F401  (registers the rows)

    if not argv or argv[0] in ("-h", "--help"):
        from .cfg import list_cfgs

        print("usage: effzoo yolo MODE [ARGS...]  (the Ultralytics CLI with effzoo registered)")
        print("  e.g. effzoo yolo train model=yolo11n-effv2s.yaml data=coco8.yaml epochs=10")
        print("shipped model yamls: " + ", ".join(list_cfgs()))
        print("Ultralytics' own help follows.\n")
        argv = ["help"]
    # Ultralytics reads sys.argv (the same list object it saved at import time).
    sys.argv[:] = ["effzoo-yolo", *argv]
    entrypoint()
    return 0
