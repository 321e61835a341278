"""REDIS_URL through Redis Sentinel (`redis+sentinel://`): the URL read and refused, secrets kept out of what is
printed, every process reaching the master through the Sentinels, and a failover under running processes
ridden out like a Redis restart: one line, then the new master, nothing lost.

The servers are real and the test's own (tests/ownsentinel.py): a master, a replica and a Sentinel with
passwords; the URL also lists a Sentinel that is not there, which clients skip.
"""
from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import requests
from pydantic import ValidationError
from rq import Queue

from shared import sentinelurl
from shared.keys import PROCESSOR_GROUP, Keys
from shared.logs import RedactingFilter, redact, safe_url
from shared.outage import redis_reason
from shared.redisconn import connect, unavailable
from shared.settings import Settings, describe_errors
from shared.storage import Database
from tests import servers, test_notifier_procs, test_processor_faults
from tests.fakes.discord import FakeDiscord
from tests.fakes.sofascore import load_fixture
from tests.ownsentinel import REDIS_PASSWORD, SENTINEL_PASSWORD, SERVICE, SentinelSet, wait
from tests.test_notifier import enqueue, insert_alerts
from tests.test_notifier_procs import Notifiers, delivered, sent_main, wait_for
from tests.test_processor import FAR_LOOKAHEAD, GURU, TACTICO, alerts, put
from tests.test_processor_faults import Running, enqueued, lines

notifiers = test_notifier_procs.notifiers  # fixtures: `sofamon notify` subprocesses; processors in threads
run_processor = test_processor_faults.run_processor


# -- the URL (no server) -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("url", "expected"), [
    ("redis+sentinel://h1:26379,h2:26379/mymaster/0",
     {"sentinels": (("h1", 26379), ("h2", 26379)), "service": "mymaster", "db": 0, "tls": False}),
    ("redis+sentinel://h1,10.0.0.2:5000/mymaster",
     {"sentinels": (("h1", 26379), ("10.0.0.2", 5000)), "db": 0}),
    ("redis+sentinel://:pw@h1/cache/3?sentinel_password=spw",
     {"password": "pw", "username": None, "sentinel_password": "spw", "db": 3, "service": "cache"}),
    ("redis+sentinel://app:p%40ss@[::1]:5000/m/1?sentinel_username=watch&sentinel_password=s",
     {"username": "app", "password": "p@ss", "sentinels": (("::1", 5000),), "sentinel_username": "watch"}),
    ("rediss+sentinel://h1/m/0?ssl_cert_reqs=none&ssl_ca_certs=/etc/ca.pem",
     {"tls": True, "ssl": {"ssl_cert_reqs": "none", "ssl_ca_certs": "/etc/ca.pem"}}),
])
def test_sentinel_urls_are_read(url: str, expected: dict[str, object]) -> None:
    parsed = sentinelurl.parse(Settings(_env_file=None, redis_url=url).redis_url)
    for name, value in expected.items():
        assert getattr(parsed, name) == value, name


def test_connection_arguments_keep_the_two_passwords_apart() -> None:
    parsed = sentinelurl.parse("rediss+sentinel://app:pw@h1/m/2?sentinel_password=spw&ssl_cert_reqs=none")
    assert parsed.master_kwargs() == {"db": 2, "username": "app", "password": "pw", "ssl": True,
                                      "ssl_cert_reqs": "none"}
    assert parsed.sentinel_kwargs() == {"username": None, "password": "spw", "ssl": True, "ssl_cert_reqs": "none"}
    assert parsed.without_credentials() == "rediss+sentinel://h1:26379/m/2"


@pytest.mark.parametrize(("url", "says"), [
    ("redis+sentinel:///mymaster/0", "no Sentinel host"),
    ("redis+sentinel://:pw-SECRET@/mymaster/0", "no Sentinel host"),
    ("redis+sentinel://h1:26379,,h2:26379/mymaster/0", "without a host"),
    ("redis+sentinel://h1:26379,:26380/mymaster/0", "without a host"),
    ("redis+sentinel://:pw-SECRET@h1:26379", "names no service"),
    ("redis+sentinel://h1:26379/", "names no service"),
    ("redis+sentinel://h1:26379//0", "names no service"),
    ("redis+sentinel://h1:abc/mymaster", "port"),
    ("redis+sentinel://h1:26379,h2:0/mymaster", "port"),
    ("redis+sentinel://h1:70000/mymaster", "port"),
    ("redis+sentinel://h1/mymaster/zero", "db"),
    ("redis+sentinel://h1/mymaster/0/extra", "path"),
    ("redis+sentinel://h1/mymaster/0?password=pw-SECRET", "option password"),
    ("redis+sentinel://h1/mymaster/0?pw-SECRET", "option that"),
    ("redis+sentinel://h1/m/0?sentinel_password=a&sentinel_password=pw-SECRET", "twice"),
    ("redis+sentinel://h1/mymaster/0?ssl_cert_reqs=none", "rediss+sentinel"),
    ("rediss+sentinel://h1/mymaster/0?ssl_cert_reqs=maybe", "ssl_cert_reqs"),
    ("sentinel://:pw-SECRET@h1/mymaster", "redis+sentinel://"),
])
def test_invalid_sentinel_urls_are_refused_naming_redis_url(url: str, says: str) -> None:
    with pytest.raises(ValidationError) as error:
        Settings(_env_file=None, redis_url=url)
    [line] = describe_errors(error.value)
    assert line.startswith("REDIS_URL: ") and says in line, line
    assert "SECRET" not in line


@pytest.mark.parametrize("url", ["redis+sentinel://h1:26379", "redis+sentinel://:pw-SECRET@h1:x/mymaster/0"])
def test_an_invalid_sentinel_url_stops_startup_with_one_line(url: str, tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "REDIS_URL": url}
    result = subprocess.run([sys.executable, "-m", "sofamon.cli", "status"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "REDIS_URL" in line and "SECRET" not in line and "Traceback" not in result.stderr


def test_passwords_of_a_sentinel_url_are_never_printed() -> None:
    url = "redis+sentinel://app:redis-pw-SECRET@h1:26379,h2:26379/mymaster/0?sentinel_password=sent-pw-SECRET"
    settings = Settings(_env_file=None, redis_url=url)
    assert safe_url(url) == "redis+sentinel://h1:26379,h2:26379/mymaster/0"
    assert {"redis-pw-SECRET", "sent-pw-SECRET"} <= set(settings.secrets())
    # Free text: masked by its shape, even without the configured secrets...
    assert "SECRET" not in redact(f"connecting to {url} failed", [])
    # ...and the passwords alone, wherever a library prints them, by the log filter.
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "AUTH with %s / %s", ("redis-pw-SECRET",
                               "sent-pw-SECRET"), None)
    RedactingFilter(settings.secrets()).filter(record)
    assert "SECRET" not in record.getMessage()


def test_sentinel_settings_named_otherwise_point_at_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.settings import unknown_names

    lines_ = unknown_names({"REDIS_SENTINELS": "h1:26379", "REDIS_SENTINEL_MASTER": "mymaster"}, None)
    assert len(lines_) == 2 and all("redis+sentinel://" in line for line in lines_)


# -- through real Sentinels -----------------------------------------------------------------------------
@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelSet]:
    """A master, its replica and a Sentinel of the test's own (skipped without a redis-server)."""
    servers = SentinelSet(tmp_path / "sentinel")
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()


@pytest.fixture
def sentinel_settings(migrated_settings: Callable[..., Settings], sentinels: SentinelSet) -> Callable[..., Settings]:
    """Settings whose REDIS_URL is the Sentinel set's (db 2), with a migrated SQLite database of their own."""
    return lambda **overrides: migrated_settings(**{"redis_url": sentinels.url(db=2), **overrides})


def test_connect_reaches_the_master_through_the_sentinels(sentinels: SentinelSet,
                                                          sentinel_settings: Callable[..., Settings]) -> None:
    conn = connect(sentinel_settings())
    conn.set("written", "through Sentinel")
    master = sentinels.master().conn()
    master.select(2)  # REDIS_URL's db
    assert master.get("written") == b"through Sentinel"
    assert conn.connection_pool.service_name == SERVICE


def test_a_demoted_master_answering_readonly_is_a_reconnect_not_a_failure(
        sentinels: SentinelSet, sentinel_settings: Callable[..., Settings]) -> None:
    """A master demoted under a connection answers writes with READONLY: redis-py's Sentinel pool closes the
    connection and raises ConnectionError, which every process counts as Redis away (wait, try again)."""
    conn = connect(sentinel_settings())
    conn.set("k", "1")
    master = sentinels.master().conn()
    master.replicaof("127.0.0.1", str(sentinels.absent_port))  # demoted behind the Sentinel's back
    try:
        with pytest.raises(redis.ConnectionError) as error:
            conn.set("k", "2")
        assert unavailable(error.value)
        assert "ConnectionError" in redis_reason(error.value)
    finally:
        master.replicaof("NO", "ONE")
    conn.set("k", "3")  # a new connection, to the master the Sentinels name
    assert conn.get("k") == b"3"


# -- the processor --------------------------------------------------------------------------------------
def _alerted(db: Database) -> set[str]:
    return {r[2] for r in alerts(db)}


@pytest.mark.parametrize("how", ["failover", "master-killed"])
def test_processor_rides_out_a_failover(sentinels: SentinelSet, sentinel_settings: Callable[..., Settings],
                                        run_processor: Callable[[Settings], Running], how: str,
                                        caplog: pytest.LogCaptureFixture) -> None:
    """A processor turns stream entries into RQ jobs through the Sentinels; the master fails over (a
    `SENTINEL FAILOVER`, or the master killed): the same processor goes on with the new master, at most one line
    says Redis was away, and every alert has its job there."""
    caplog.set_level(logging.INFO)
    settings = sentinel_settings(time_lookahead_hours=FAR_LOOKAHEAD)
    db = Database(settings.database_url)
    conn = connect(settings)
    keys = Keys.of(settings)
    running = run_processor(settings)
    put(conn, settings, "leaderboard", "top", load_fixture("vote-ranking.json"))
    put(conn, settings, "predictions", GURU, load_fixture(f"user-{GURU}-page0.json"))
    test_processor_faults.wait_for(lambda: _alerted(db) == {GURU} and enqueued(conn) == {r[0] for r in alerts(db)},
                                   "GoalGuru's alerts enqueued", running)
    old = sentinels.master()

    new = sentinels.failover() if how == "failover" else sentinels.kill_master()

    assert new is not old
    conn = connect(settings)  # the fetcher's: a client of its own, which asks the Sentinels where the master is
    put(conn, settings, "predictions", TACTICO, load_fixture(f"user-{TACTICO}-page0.json"))
    test_processor_faults.wait_for(lambda: _alerted(db) == {GURU, TACTICO}, "Tactico's alerts after the failover",
                                   running)
    on_new = new.conn()
    on_new.select(2)
    test_processor_faults.wait_for(lambda: enqueued(on_new) == {r[0] for r in alerts(db)},
                                   "every alert's job on the new master", running)
    test_processor_faults.wait_for(lambda: on_new.xpending(keys.fetched, PROCESSOR_GROUP)["pending"] == 0,
                                   "the entries acknowledged", running)
    assert running.stop() == 0
    assert "Traceback" not in caplog.text
    away, back = lines(caplog, "Redis unavailable"), lines(caplog, "Redis answers again")
    assert len(away) <= 1 and len(back) == len(away), caplog.text
    [moved] = lines(caplog, "new master")
    assert f"{SERVICE}: 127.0.0.1:{new.port} (was 127.0.0.1:{old.port})" in moved
    assert "SECRET" not in caplog.text
    assert on_new.xlen(keys.dead_letters) == 0
    db.close()


def test_processor_waits_while_the_master_answers_readonly(sentinels: SentinelSet,
                                                           sentinel_settings: Callable[..., Settings],
                                                           run_processor: Callable[[Settings], Running],
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """The master the Sentinels name refuses writes (READONLY: demoted, and the Sentinels not told yet) while
    entries wait: the processor waits with one line, nothing goes to dead letters, and once the master takes
    writes again the entries are processed and their alerts enqueued, in the same run."""
    caplog.set_level(logging.INFO)
    settings = sentinel_settings(time_lookahead_hours=FAR_LOOKAHEAD)
    db = Database(settings.database_url)
    conn = connect(settings)
    keys = Keys.of(settings)
    put(conn, settings, "leaderboard", "top", load_fixture("vote-ranking.json"))
    put(conn, settings, "predictions", GURU, load_fixture(f"user-{GURU}-page0.json"))
    conn.xgroup_create(keys.fetched, PROCESSOR_GROUP, id="0")
    master = sentinels.master().conn()
    master.replicaof("127.0.0.1", str(sentinels.absent_port))
    running = run_processor(settings)
    test_processor_faults.wait_for(lambda: bool(lines(caplog, "Redis unavailable")), "the processor waiting",
                                   running)
    time.sleep(1.0)  # a while of refusals: retried, never dead-lettered
    running.alive()
    master.replicaof("NO", "ONE")
    test_processor_faults.wait_for(lambda: len(alerts(db)) == 2 and enqueued(conn) == {r[0] for r in alerts(db)},
                                   "the alerts recorded and enqueued", running)
    test_processor_faults.wait_for(lambda: conn.xpending(keys.fetched, PROCESSOR_GROUP)["pending"] == 0,
                                   "the entries acknowledged", running)
    assert running.stop() == 0
    assert "Traceback" not in caplog.text
    [away] = lines(caplog, "Redis unavailable")
    assert "previous master is now a slave" in away, away
    assert len(lines(caplog, "Redis answers again")) == 1
    assert conn.xlen(keys.dead_letters) == 0
    db.close()


# -- the notifier -----------------------------------------------------------------------------------------
def _alive(group: Notifiers) -> None:
    for proc in group.procs:
        assert proc.poll() is None, f"a notifier exited with {proc.returncode}\n{group.output()[-4000:]}"


@pytest.mark.parametrize("how", ["failover", "master-killed"])
def test_notifier_rides_out_a_failover(sentinels: SentinelSet, sentinel_settings: Callable[..., Settings],
                                       notifiers: Callable[[Settings], Notifiers], how: str) -> None:
    """A `sofamon notify` process delivers to Discord through the Sentinels; the master fails over: the same
    process goes on delivering what waited before and what is enqueued on the new master, each alert once."""
    with FakeDiscord(bucket_limit=5, bucket_window=1.0, channel_per_minute=None) as fake:
        settings = sentinel_settings(discord_webhook_url=fake.url(), discord_messages_per_minute=100_000)
        db = Database(settings.database_url)
        conn = connect(settings)
        group = notifiers(settings)
        proc = group.start()
        before = insert_alerts(db, 3)
        enqueue(conn, before)
        wait_for(lambda: sent_main(db) == 3, 20, "the first alerts sent", group)

        sentinels.failover() if how == "failover" else sentinels.kill_master()

        _alive(group)
        after = insert_alerts(db, 3)
        enqueue(connect(settings), after)  # the processor's: a client of its own
        wait_for(lambda: sent_main(db) == 6, 30, "the alerts enqueued on the new master sent", group)
        _alive(group)
        assert group.procs == [proc]
        assert group.stop() == [0], group.output()[-6000:]
    assert sorted(Counter(delivered(fake)).elements()) == before + after  # each once
    output = group.output()
    assert "Traceback" not in output and "unhandled exception" not in output
    away, back = _lines(output, "Redis unavailable"), _lines(output, "Redis answers again")
    assert len(away) <= 1 and len(back) == len(away), output
    assert len(_lines(output, "the Sentinels name a new master")) == 1, output
    assert REDIS_PASSWORD not in output and SENTINEL_PASSWORD not in output
    db.close()


def _lines(output: str, text: str) -> list[str]:
    return [line for line in output.splitlines() if text in line]


def test_a_read_cut_short_leaves_no_reply_for_the_next_command(sentinels: SentinelSet,
                                                               sentinel_settings: Callable[..., Settings]) -> None:
    """A blocking read interrupted by an exception (RQ's SIGTERM handler raises StopRequested inside the
    worker's blocking dequeue): the connection is closed, so the next command gets its own reply, not the
    interrupted command's (redis-py 8.1's Sentinel connections kept it open: the notifier hung at its stop)."""
    conn = connect(sentinel_settings())
    conn.set("k", "v")

    class Interrupted(Exception):
        pass

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted()

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(Interrupted):
            conn.blpop(["nothing"], timeout=2)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert conn.get("k") == b"v"


# -- sofamon status --------------------------------------------------------------------------------------
def _status(url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "REDIS_URL": url, "DATABASE_URL": f"sqlite:///{tmp_path}/status.db"}
    return subprocess.run([sys.executable, "-m", "sofamon.cli", "status", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)


def test_status_reads_redis_through_the_sentinels_and_names_the_master(sentinels: SentinelSet,
                                                                       tmp_path: Path) -> None:
    url = sentinels.url(db=2)
    report = json.loads(_status(url, tmp_path, "--json").stdout)
    assert report["redis"]["reachable"] and report["redis"]["master"] == f"127.0.0.1:{sentinels.master().port}"
    assert report["redis"]["url"] == f"redis+sentinel://127.0.0.1:{sentinels.absent_port},127.0.0.1:" \
                                     f"{sentinels.sentinel.port}/{SERVICE}/2"
    text = _status(url, tmp_path)
    assert re.search(rf"\n  master +127\.0\.0\.1:{sentinels.master().port} \(named by the Sentinels\)\n", text.stdout)
    for output in (json.dumps(report), text.stdout, text.stderr):
        assert "SECRET" not in output


def test_status_says_in_one_line_that_no_sentinel_answers(tmp_path: Path) -> None:
    url = (f"redis+sentinel://:{REDIS_PASSWORD}@127.0.0.1:{servers.free_port()},127.0.0.1:{servers.free_port()}"
           f"/{SERVICE}/0?sentinel_password={SENTINEL_PASSWORD}")
    result = _status(url, tmp_path)
    assert result.returncode == 1
    [line] = [line for line in result.stdout.splitlines() if "Redis" in line]
    assert line.startswith("UNHEALTHY: Redis at redis+sentinel://127.0.0.1:")
    assert line.endswith("unreachable: MasterNotFoundError: No master found for 'mymaster': none of the 2 "
                         "Sentinels answered"), line
    assert "SECRET" not in result.stdout + result.stderr


# -- rq-dashboard ------------------------------------------------------------------------------------------
def test_dashboard_reaches_the_master_through_the_sentinels_before_and_after_a_failover(
        sentinels: SentinelSet, sentinel_settings: Callable[..., Settings], tmp_path: Path) -> None:
    """`sofamon dashboard` gives rq-dashboard the Sentinel URL without its passwords (in its environment) and the
    passwords through its configuration module: it shows the queues of REDIS_URL's db, on whichever master the
    Sentinels name, and no password is on its command line. (Only Sentinels that answer are listed: rq-dashboard
    asks them in order at every page, and redis-py spends about 5 s on each one that is down.)"""
    settings = sentinel_settings(redis_url=sentinels.url(db=2, absent_first=False))
    port = servers.free_port()
    Queue("before-failover", connection=connect(settings)).enqueue("builtins.print", "x")
    env = {"PATH": os.environ["PATH"], "REDIS_URL": settings.redis_url, "RQ_DASHBOARD_PORT": str(port),
           "RQ_DASHBOARD_USERNAME": "operator", "RQ_DASHBOARD_PASSWORD": "dash-pw-SECRET"}
    log = tmp_path / "dashboard.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(Path(sys.executable).with_name("sofamon")), "dashboard"], env=env, cwd=tmp_path,
                                stdout=out, stderr=subprocess.STDOUT)
    auth = ("operator", "dash-pw-SECRET")

    def queues() -> list[str]:
        answer = requests.get(f"http://127.0.0.1:{port}/0/data/queues.json", auth=auth, timeout=10)
        return [q["name"] for q in answer.json()["queues"]] if answer.status_code == 200 else []

    def showing(name: str) -> Callable[[], bool]:
        def check() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                return name in queues()
            except requests.RequestException:
                return False
        return check

    try:
        wait(showing("before-failover"), "the dashboard to show the queue")
        sentinels.failover()
        Queue("after-failover", connection=connect(settings)).enqueue("builtins.print", "x")
        wait(showing("after-failover"), "the dashboard to show the new master's queue")
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace")
        assert "SECRET" not in cmdline and "redis" not in cmdline.replace(str(Path(sys.executable).parent), "")
        assert "SECRET" not in log.read_text()
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.parametrize("url", ["rediss+sentinel://h1:26379/mymaster/0", "redis+sentinel://app:pw@h1/mymaster/0",
                                 "redis+sentinel://[::1]:26379/mymaster/0"])
def test_dashboard_says_what_it_cannot_reach_through_sentinel(url: str, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "sofamon.cli", "dashboard"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, env={"PATH": os.environ["PATH"], "REDIS_URL": url})
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("sofamon dashboard: rq-dashboard cannot reach Redis through Sentinel with "), line


# -- a plain `rq worker` -----------------------------------------------------------------------------------
def test_a_plain_rq_worker_delivers_through_the_sentinels(sentinel_settings: Callable[..., Settings],
                                                          tmp_path: Path) -> None:
    """`rq worker -c notifier.rqconfig alerts`: rq's own worker connects through the Sentinels (its SENTINEL
    settings, from REDIS_URL) and the jobs it runs build their context from the same REDIS_URL."""
    with FakeDiscord(bucket_limit=5, bucket_window=1.0, channel_per_minute=None) as fake:
        settings = sentinel_settings(discord_webhook_url=fake.url())
        db = Database(settings.database_url)
        ids = insert_alerts(db, 3)
        enqueue(connect(settings), ids)
        env = {"PATH": os.environ["PATH"], "REDIS_URL": settings.redis_url, "REDIS_PREFIX": settings.redis_prefix,
               "DATABASE_URL": settings.database_url, "DISCORD_WEBHOOK_URL": fake.url()}
        result = subprocess.run([str(Path(sys.executable).with_name("rq")), "worker", "--burst", "-c",
                                 "notifier.rqconfig", "alerts"], env=env, cwd=tmp_path, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-3000:]
        assert sent_main(db) == 3 and sorted(delivered(fake)) == ids
        assert "SECRET" not in result.stdout + result.stderr
    db.close()


# -- over TLS ---------------------------------------------------------------------------------------------
def test_rediss_sentinel_reaches_the_master_over_tls_and_follows_a_failover(
        migrated_settings: Callable[..., Settings], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`rediss+sentinel://...?ssl_ca_certs=...`: TLS to the Sentinels and to the master (servers that take TLS
    only, with a certificate of the test's own), through a failover."""
    caplog.set_level(logging.INFO)
    tls = SentinelSet(tmp_path / "tls", tls=True)
    try:
        tls.start()
        settings = migrated_settings(redis_url=tls.url(db=2))
        assert settings.redis_url.startswith("rediss+sentinel://")
        conn = connect(settings)
        conn.set("k", "before")
        new = tls.failover()
        # While it works, the client asks the Sentinels every MASTER_CHECK_SECONDS where the master is.
        wait(lambda: conn.ping() and conn.connection_pool.master_address[1] == new.port, "the client to follow")
        conn.set("k", "after")
        on_new = new.conn()
        on_new.select(2)
        assert on_new.get("k") == b"after"
        assert len(lines(caplog, "new master")) == 1
    finally:
        tls.stop()
