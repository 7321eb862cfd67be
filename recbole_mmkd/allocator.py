"""glibc's allocator for training, and for measuring memory.

PyTorch's CPU tensors come from ``malloc``. glibc serves a request above its mmap threshold
(at most 32 MB) with a fresh ``mmap`` and unmaps it on free, so a batch that makes ``(rows,
items)`` temporaries (DA-MRS's similarities to every item, LGMRec's and MGCN's contrastive
logits) faults in every page of each one again, batch after batch. :func:`keep_freed_memory`
is what training processes run with (the CLI and every Ray Tune trial; a Python API user's
own process is left alone unless it calls it); :func:`return_freed_memory` is its opposite,
for measuring a peak. Neither changes a result, only where the bytes live; elsewhere than
glibc (macOS, musl) both do nothing. ``bench/bench_allocator.py`` measures the difference.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4


def _mallopt(*settings: tuple[int, int]) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return all(mallopt(option, value) == 1 for option, value in settings)


def keep_freed_memory() -> bool:
    """Serve every allocation from the heap (no ``mmap``) and keep freed heap up to 2 GB
    instead of returning it, so the next batch reuses the pages it already has. The process's
    resident memory then stays near its peak. Returns whether glibc took the settings."""
    return _mallopt((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, 2**31 - 1))


def return_freed_memory() -> bool:
    """Serve every allocation over 128 KB by ``mmap`` and unmap it on free, so that resident
    memory measured around a call is that call's own (by default glibc raises its threshold
    after the first large free, and later allocations come from heap already held)."""
    return _mallopt((M_MMAP_MAX, 65536), (M_MMAP_THRESHOLD, 128 * 1024),
                    (M_TRIM_THRESHOLD, 128 * 1024))  # fmt: skip
