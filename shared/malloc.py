"""The C allocator's settings for a long-running process whose large payloads come and go.

glibc hands a block above its mmap threshold (128 KiB at start) straight from the system and gives it
back once freed, but the first such free raises the threshold to that block's size (up to 32 MiB), and
the heap's trim threshold with it: from then on, payloads of hundreds of kilobytes (a leaderboard, the
native HTTP library's answers) are carved from the heap, and their pages stay resident after they are
freed. Fixing the threshold keeps them going back (5 MB less for the fetcher with 1,000 predictors, see
bench/README.md). Elsewhere than glibc (musl, macOS) this does nothing.
"""
from __future__ import annotations

import ctypes

M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h
MMAP_THRESHOLD = 128 * 1024  # glibc's starting value, fixed


def fix_mmap_threshold() -> bool:
    """Large blocks always from and back to the system; True when the C library took the setting."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
