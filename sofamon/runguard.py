"""`python -m sofamon.runguard`: exit 1 with one line when this checkout already runs under supervisord.

`make run` asks this first, before it changes anything: a second supervisord would fail on the control
socket anyway, but only after the run script had rewritten the running one's program files (its
embedded Redis). A supervisord is running when its control socket accepts a connection; the socket file
a killed one leaves behind does not, so it does not count.
"""
from __future__ import annotations

import socket
import sys
from pathlib import Path

# As in supervisord.conf ([unix_http_server] file=, [supervisord] pidfile=), relative to the checkout.
SOCKET = Path("var/supervisor.sock")
PIDFILE = Path("var/supervisord.pid")


def running(home: Path) -> str | None:
    """How we know a supervisord serves this checkout (`pid 123`), or None when none does."""
    path = home / SOCKET
    if not path.exists():
        return None
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return None  # left behind by a supervisord that died
    except OSError as error:
        return f"its socket {SOCKET} exists but cannot be opened: {error.strerror or type(error).__name__}"
    finally:
        probe.close()
    try:
        return f"pid {int((home / PIDFILE).read_text().strip())}"
    except (OSError, ValueError):
        return f"socket {SOCKET}"


def main() -> int:
    found = running(Path.cwd())
    if found is None:
        return 0
    print(f"sofamon is already running here under supervisord ({found}): nothing changed;"
          " see `.venv/bin/supervisorctl -c supervisord.conf status`, stop it with `... shutdown`", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
