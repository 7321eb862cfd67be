"""glibc's allocator for training, and for measuring memory.

PyTorch's CPU tensors come from ``malloc``. glibc serves a request above its mmap threshold
(at most 32 MB; in a thread with an arena of its own, any request of 64 MB or more) with a
fresh ``mmap`` and unmaps it on free, so a batch that makes ``(rows, items)`` temporaries
(DA-MRS's similarities to every item, LGMRec's and MGCN's contrastive logits) faults in every
page of each one again, batch after batch. :func:`keep_freed_memory` is what the CLI runs
with; Ray's workers, whose trials train in threads of their own, start with the same settings
as environment variables (:data:`KEEP_ENV`, through ``runtime_env`` where this project starts
or joins Ray). A Python API user's own process is left alone unless it calls
:func:`keep_freed_memory`. :func:`return_freed_memory` is its opposite, for measuring a peak.
Neither changes a result, only where the bytes live; elsewhere than glibc (macOS, musl) both
do nothing. ``bench/bench_allocator.py`` measures the difference.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
M_ARENA_MAX = -8
# the same settings as environment variables, for processes started from this one (Ray's
# workers): glibc reads them at start, before any thread has its own arena
KEEP_ENV = {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_MAX_": "0",
            "MALLOC_TRIM_THRESHOLD_": str(2**31 - 1)}  # fmt: skip


def _mallopt(*settings: tuple[int, int]) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    taken = [mallopt(option, value) == 1 for option, value in settings]
    return all(taken)


def keep_freed_memory() -> bool:
    """Serve every allocation from the main heap (no ``mmap``, one arena for every thread
    started from now on) and keep freed heap up to 2 GB instead of returning it, so the next
    batch reuses the pages it already has. The process's resident memory then stays near its
    peak. A thread that already has an arena of its own still maps requests of 64 MB and more
    afresh (glibc's per-thread heaps are at most 64 MB): a process whose training runs in
    such a thread (a Ray Tune trial) needs :data:`KEEP_ENV` at its start. Returns whether
    glibc took the settings."""
    return _mallopt((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, 2**31 - 1))


def return_freed_memory() -> bool:
    """Serve every allocation over 128 KB by ``mmap`` and unmap it on free, so that resident
    memory measured around a call is that call's own (by default glibc raises its threshold
    after the first large free, and later allocations come from heap already held)."""
    return _mallopt((M_MMAP_MAX, 65536), (M_MMAP_THRESHOLD, 128 * 1024),
                    (M_TRIM_THRESHOLD, 128 * 1024))  # fmt: skip
