"""glibc allocator settings that matter for large feature maps (opt-in, process-wide).

Used by ``python benchmarks/bench.py --tune-malloc``; in another script next to this
one, ``from malloc import tune_allocator`` and call it before the first forward.

glibc's malloc serves blocks above a threshold with ``mmap`` and returns freed
memory at the top of the heap to the OS once it exceeds a trim threshold. For a
backbone at 640x640 both happen on every forward, so every large feature map is
page-faulted in again each call (measured on a VM here: a fresh 39 MB tensor
costs ~40 ms to fill, a reused one ~6 ms). ONNX Runtime avoids this with its own
arena. ``tune_allocator()`` makes glibc keep and reuse such blocks instead; it
changes the allocator for the whole process (memory stays reserved at its peak),
so effzoo itself never calls it. jemalloc or tcmalloc via ``LD_PRELOAD`` are
the usual alternatives.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: glibc's ceiling for M_MMAP_THRESHOLD on 64-bit (larger blocks are always mmapped)
MMAP_THRESHOLD_MAX = 32 << 20


def tune_allocator(
    *, mmap_threshold: int = MMAP_THRESHOLD_MAX, trim_threshold: int = 1 << 30
) -> bool:
    """Raise glibc's mmap and trim thresholds for this process; False where not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, min(int(mmap_threshold), MMAP_THRESHOLD_MAX)) == 1
    return bool(ok and mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)) == 1)
