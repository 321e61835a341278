"""Resident memory of each program of a running `make run` system, as supervisord sees it.

Run from the repository root while the system runs: `.venv/bin/python bench/memory.py [seconds]`.
It samples every program's RSS (children included, as memmon -c counts it) for a while and prints
the peak and the last value in MB, the figures the README's memory budget is based on.
"""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def pids() -> dict[str, int]:
    out = subprocess.run([str(ROOT / ".venv/bin/supervisorctl"), "-c", str(ROOT / "supervisord.conf"), "status"],
                         capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        match = re.search(r"^(\S+)\s+RUNNING\s+pid (\d+)", line)
        if match:
            found[match.group(1)] = int(match.group(2))
    return found


def rss_kb(pid: int) -> int:
    total = 0
    for p in [pid, *children(pid)]:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        total += int(match.group(1)) if match else 0
    return total


def children(pid: int) -> list[int]:
    try:
        direct = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return [c for d in direct for c in (d, *children(d))]


def main() -> int:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
    peak: dict[str, int] = {}
    last: dict[str, int] = {}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for name, pid in pids().items():
            last[name] = rss_kb(pid)
            peak[name] = max(peak.get(name, 0), last[name])
        time.sleep(1)
    if not last:
        print("no RUNNING programs: start the system with `make run` first")
        return 1
    print(f"{'program':<24}{'last MB':>10}{'peak MB':>10}")
    for name in sorted(last):
        print(f"{name:<24}{last[name] / 1024:>10.1f}{peak[name] / 1024:>10.1f}")
    print(f"{'total':<24}{sum(last.values()) / 1024:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
