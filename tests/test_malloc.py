"""The C allocator's fixed mmap threshold (shared/malloc.py): large blocks go back to the system once freed."""
from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# A fresh process frees an 8 MB block (glibc would raise its threshold to 8 MB), then holds 20 MB in
# blocks of 512 KB and frees all but the newest; prints how many MB stayed resident.
HELD_AFTER_FREE = """
import re, sys
from shared import malloc

def rss_kb():
    return int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read())[1])

if sys.argv[1] == "fixed":
    assert malloc.fix_mmap_threshold()
big = b"x" * (8 << 20)
del big
before = rss_kb()
blocks = [b"x" * (512 << 10) for _ in range(40)]
newest = blocks[-1]
del blocks
print((rss_kb() - before) // 1024)
"""


def held_after_free(mode: str) -> int:
    result = subprocess.run([sys.executable, "-c", HELD_AFTER_FREE, mode], cwd=REPO, capture_output=True, text=True,
                            timeout=60, check=True)
    return int(result.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's")
def test_freed_large_blocks_leave_the_process() -> None:
    assert held_after_free("dynamic") >= 15  # glibc's own behaviour, which the module is there for
    assert held_after_free("fixed") <= 2  # the newest block (0.5 MB) and noise
