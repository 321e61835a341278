"""Several hosts, one monitor: instance ids and liveness by heartbeat (issue 12).

Every process has an id of its own whatever its hostname; another process is gone when its heartbeat is
cleared or timed out (by Redis's clock), or when it provably ended on this very machine and pid namespace;
never because a pid that means nothing here does not exist. Real Redis; hostnames set with `unshare --uts`
where we are root (two processes of this machine share a hostname anyway).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from rq.job import Job, JobStatus
from rq.worker import Worker

from notifier import context, liveness
from notifier.main import _Maintenance
from notifier.worker import NotifierWorker
from processor.main import Processor
from shared import heartbeat, instance
from shared.jobs import alerts_queue, enqueue_alert
from shared.keys import PROCESSOR_GROUP, Keys
from shared.settings import Settings
from shared.storage import Database
from sofamon.cli import main
from sofamon.status import gather
from sofamon.statusrules import build_report
from sofamon.statusview import render
from tests.fakes.sofascore import REF_NOW
from tests.test_notifier import TIMINGS, beat_elsewhere, insert_alerts
from tests.test_processor import FAR_LOOKAHEAD, alerts, feed_round_one

ROOT = os.geteuid() == 0 and shutil.which("unshare") is not None
PYTHON = sys.executable


def with_hostname(command: list[str], host: str, *, pid_namespace: bool = False) -> list[str]:
    """`command` on a machine named `host` (a UTS namespace of its own; with `pid_namespace`, pids of its own
    too, as on another machine); as it is when we are not root (this machine's hostname is shared anyway)."""
    if not ROOT:
        return command
    extra = ["--pid", "--fork", "--mount-proc"] if pid_namespace else []
    return ["unshare", "--uts", *extra, "sh", "-c", f'hostname "$0" && exec "$@"', host, *command]


def age(conn: redis.Redis, keys: Keys, name: str, seconds: float) -> None:
    """Make a heartbeat `seconds` old by Redis's clock (its key's remaining time to live), without waiting."""
    body = json.loads(conn.get(keys.heartbeat(name)))
    conn.pexpire(keys.heartbeat(name), int((body["ttl"] - seconds) * 1000))


def timing(lease: float = 60.0) -> heartbeat.Timing:
    return heartbeat.Timing.of(Settings(_env_file=None, notifier_lease_seconds=lease))  # type: ignore[call-arg]


# -- identity -----------------------------------------------------------------------------------------------
IDENTIFY = ("import json; from shared import instance; "
            "print(json.dumps({'name': instance.process_name('processor'), **instance.identity()}))")


def test_two_processes_with_one_hostname_have_distinct_identities(tmp_path: Path) -> None:
    """Two machines named alike (cloned VMs): two names; the hostname is only shown."""
    runs = [json.loads(subprocess.run(with_hostname([PYTHON, "-c", IDENTIFY], "clone-vm"), capture_output=True,
                                      text=True, check=True, cwd=Path(__file__).parents[1]).stdout)
            for _ in range(2)]
    assert runs[0]["name"] != runs[1]["name"] and runs[0]["instance"] != runs[1]["instance"]
    assert runs[0]["name"] == f"processor:{runs[0]['instance']}"
    assert runs[0]["host"] == runs[1]["host"] == ("clone-vm" if ROOT else instance.hostname())
    # And this process's own id differs from both, though it runs on the same machine.
    assert instance.instance_id() not in {r["instance"] for r in runs}


@pytest.mark.skipif(not ROOT, reason="needs root for `unshare --pid` (a pid namespace of its own)")
def test_a_process_in_another_pid_namespace_is_on_another_machine_for_pids() -> None:
    """A container's pid 1 is no pid of ours: its heartbeat's machine says so, so its pid is never looked up here."""
    other = json.loads(subprocess.run(with_hostname([PYTHON, "-c", IDENTIFY], "container", pid_namespace=True),
                                      capture_output=True, text=True, check=True,
                                      cwd=Path(__file__).parents[1]).stdout)
    assert other["pid"] == 1 and other["machine"] and other["machine"] != instance.machine()
    assert instance.running_here(other) is None  # cannot tell from here: the heartbeat decides


def test_rq_worker_names_lead_back_to_their_notifier() -> None:
    owner = liveness.owner_name()
    assert owner == f"notifier:{instance.instance_id()}"
    worker = liveness.worker_name(owner)
    assert worker.startswith(f"notifier.{instance.instance_id()}.") and liveness.owner_of_worker(worker) == owner
    assert liveness.worker_name(owner) != worker  # one name per worker
    assert liveness.owner_of_worker("notifier.box.1234.a1b2c3") is None  # an older notifier's: host and pid
    assert liveness.owner_of_worker("3f2a9c1b7d4e4f0a") is None and liveness.owner_of_worker(None) is None


# -- liveness by heartbeat ------------------------------------------------------------------------------------
@pytest.fixture
def keys(redis_conn: redis.Redis) -> Keys:
    return Keys("test-identity")


def test_a_live_owner_elsewhere_with_our_hostname_and_an_unknown_pid_is_not_dead(redis_conn: redis.Redis,
                                                                                  keys: Keys) -> None:
    """The bug of two hosts named alike: a pid that does not exist here said nothing about the other machine."""
    beat_elsewhere(redis_conn, keys, "notifier:aaaaaaaaaaaa", timeout=30, host=instance.hostname(), pid=999_999)
    assert not os.path.exists("/proc/999999")
    assert not heartbeat.dead(redis_conn, keys, "notifier:aaaaaaaaaaaa", timing())
    age(redis_conn, keys, "notifier:aaaaaaaaaaaa", 29)  # old, still within its timeout
    assert not heartbeat.dead(redis_conn, keys, "notifier:aaaaaaaaaaaa", timing())


@pytest.mark.parametrize("where", ["elsewhere", "here"])
def test_an_owner_whose_heartbeat_timed_out_is_dead_whatever_its_host(redis_conn: redis.Redis, keys: Keys,
                                                                      where: str) -> None:
    name = "processor:bbbbbbbbbbbb"
    if where == "here":
        heartbeat.beat(redis_conn, keys, name, timeout=30)  # written by this very process, which runs
    else:
        beat_elsewhere(redis_conn, keys, name, timeout=30)
    age(redis_conn, keys, name, 31)
    assert heartbeat.dead(redis_conn, keys, name, timing())
    # A timed-out heartbeat is still read by status (KEEP_SECONDS), as gone.
    [beat] = heartbeat.read_all(redis_conn, keys)
    assert beat["age"] >= 31 and beat["timeout"] == 30


def test_a_cleared_or_missing_heartbeat_is_dead(redis_conn: redis.Redis, keys: Keys) -> None:
    beat_elsewhere(redis_conn, keys, "notifier:cccccccccccc")
    heartbeat.clear(redis_conn, keys, "notifier:cccccccccccc")  # a clean stop
    assert heartbeat.dead(redis_conn, keys, "notifier:cccccccccccc", timing())
    assert heartbeat.dead(redis_conn, keys, "notifier:box:1234", timing())  # an older notifier, long gone


def test_a_process_that_ended_on_this_machine_is_dead_at_once(redis_conn: redis.Redis, keys: Keys) -> None:
    """kill -9 on one host is still noticed at once: its heartbeat says it was written here, by a pid now gone
    (or reused by another process, which started later)."""
    script = ("import sys, redis; from shared import heartbeat, instance; from shared.keys import Keys; "
              "heartbeat.beat(redis.Redis.from_url(sys.argv[1]), Keys(sys.argv[2]), sys.argv[3], timeout=30)")
    url = redis_conn.connection_pool.connection_kwargs
    subprocess.run([PYTHON, "-c", script, f"redis://{url['host']}:{url['port']}/{url['db']}", keys.prefix,
                    "notifier:dddddddddddd"], check=True, cwd=Path(__file__).parents[1])
    assert heartbeat.dead(redis_conn, keys, "notifier:dddddddddddd", timing())
    # Our own pid with another start time: a reused pid, not the process that beat.
    heartbeat.beat(redis_conn, keys, "notifier:eeeeeeeeeeee", timeout=30)
    assert not heartbeat.dead(redis_conn, keys, "notifier:eeeeeeeeeeee", timing())
    body = json.loads(redis_conn.get(keys.heartbeat("notifier:eeeeeeeeeeee")))
    redis_conn.set(keys.heartbeat("notifier:eeeeeeeeeeee"), json.dumps({**body, "started": body["started"] - 1}),
                   keepttl=True)
    assert heartbeat.dead(redis_conn, keys, "notifier:eeeeeeeeeeee", timing())


def test_heartbeats_missing_right_after_redis_lost_its_data_are_not_deaths(
        own_redis: Callable[[bool], object]) -> None:
    """A Redis that just started without its data has no heartbeat at all: nobody is judged gone before every
    live process had a whole timeout to beat again."""
    server = own_redis(False)
    conn = server.conn()  # type: ignore[attr-defined]
    assert not heartbeat.dead(conn, Keys("x"), "notifier:ffffffffffff", timing())
    assert heartbeat.dead(conn, Keys("x"), "notifier:ffffffffffff", heartbeat.Timing(0.0, 1.0, 1.0))
    conn.close()


def test_timings_hand_over_within_the_lease() -> None:
    for lease in (4.0, 20.0, 60.0, 600.0):
        t = timing(lease)
        assert t.every <= t.timeout / 3 and t.timeout + t.check_every <= max(lease, heartbeat.MIN_TIMEOUT + 1)
    assert timing(60.0) == heartbeat.Timing(timeout=30.0, every=10.0, check_every=15.0)


def test_a_plain_rq_worker_running_our_job_beats_a_heartbeat(make_settings: Callable[..., Settings],
                                                             redis_conn: redis.Redis,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """`rq worker alerts` instead of `sofamon notify`: the job builds its context from the environment, and with it
    a heartbeat, or other notifiers would take its lock and claims as those of a gone notifier."""
    settings = make_settings()
    for name, value in {"REDIS_URL": settings.redis_url, "REDIS_PREFIX": settings.redis_prefix,
                        "DATABASE_URL": settings.database_url}.items():
        monkeypatch.setenv(name, value)
    context.reset()
    try:
        ctx = context.get()
        keys = Keys.of(settings)
        assert not heartbeat.dead(redis_conn, keys, ctx.owner, ctx.config.timing)
        assert json.loads(redis_conn.get(keys.heartbeat(ctx.owner)))["role"] == "notifier"
    finally:
        context.reset()
    assert heartbeat.dead(redis_conn, keys, ctx.owner, ctx.config.timing)  # stopped with it


# -- the sweeper: a started job of a notifier that is gone --------------------------------------------------
@pytest.fixture
def ctx(settings_for: Callable[..., Settings], db: Database,
        redis_conn: redis.Redis) -> context.NotifierContext:
    settings = settings_for(discord_webhook_url="http://127.0.0.1:9/api/webhooks/1/tok-NOT-USED")
    return context.create(settings, db=db, conn=redis_conn)


@pytest.fixture
def settings_for(make_settings: Callable[..., Settings], database_url: str,
                 redis_url: str) -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        return make_settings(database_url=database_url, **{**TIMINGS, **overrides})

    return make


def test_the_sweeper_requeues_a_started_job_of_a_dead_notifier_within_the_lease(
        ctx: context.NotifierContext, db: Database, redis_conn: redis.Redis) -> None:
    """Another host's notifier started the alert's job (waiting for the webhook's lock), then the host died: its RQ
    worker key lives on for minutes, but once its heartbeat times out the sweeper gives the alert a fresh job."""
    [alert_id] = insert_alerts(db, 1)
    queue = alerts_queue(redis_conn)
    assert enqueue_alert(queue, alert_id, retry_intervals=())
    other = "notifier:0a1b2c3d4e5f"
    worker = Worker([queue], connection=redis_conn, name=liveness.worker_name(other), worker_ttl=960)
    worker.register_birth()
    job = Job.fetch(f"alert-{alert_id}", connection=redis_conn)
    queue.remove(job)
    job.worker_name = worker.name
    job.set_status(JobStatus.STARTED)
    job.save()
    t = ctx.config.timing
    beat_elsewhere(redis_conn, ctx.keys, other, timeout=t.timeout)  # its last beat: then the host died
    died = time.monotonic()
    from notifier import sweeper

    assert sweeper.sweep(ctx)["running"] == 1  # alive: left alone
    maintenance = _Maintenance(ctx, NotifierWorker(ctx))  # the notifier's sweeping thread, at its own pace
    maintenance.start()
    try:
        lease = ctx.config.lease_seconds
        while queue.get_job_ids() != [f"alert-{alert_id}"]:
            assert time.monotonic() - died < lease, "the dead notifier's job was not requeued within the lease"
            time.sleep(0.05)
    finally:
        maintenance.stop()
    assert time.monotonic() - died >= t.timeout  # not before its heartbeat timed out
    assert Worker.find_by_key(worker.key, connection=redis_conn) is not None  # its worker key had not expired
    assert Job.fetch(f"alert-{alert_id}", connection=redis_conn).get_status() == JobStatus.QUEUED


def test_a_started_job_of_a_live_notifier_on_a_host_named_alike_is_left_alone(
        ctx: context.NotifierContext, db: Database, redis_conn: redis.Redis) -> None:
    [alert_id] = insert_alerts(db, 1)
    queue = alerts_queue(redis_conn)
    assert enqueue_alert(queue, alert_id, retry_intervals=())
    other = "notifier:5f4e3d2c1b0a"
    worker = Worker([queue], connection=redis_conn, name=liveness.worker_name(other))
    worker.register_birth()
    redis_conn.hset(worker.key, mapping={"hostname": instance.hostname(), "pid": 999_999})  # as the old check saw
    job = Job.fetch(f"alert-{alert_id}", connection=redis_conn)
    queue.remove(job)
    job.worker_name = worker.name
    job.set_status(JobStatus.STARTED)
    job.save()
    beat_elsewhere(redis_conn, ctx.keys, other, timeout=ctx.config.timing.timeout, host=instance.hostname())
    from notifier import sweeper

    assert sweeper.sweep(ctx)["running"] == 1
    assert Job.fetch(f"alert-{alert_id}", connection=redis_conn).get_status() == JobStatus.STARTED


# -- the processor: a gone consumer's pending entries --------------------------------------------------------
@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str, redis_url: str) -> Settings:
    return make_settings(database_url=database_url, time_lookahead_hours=FAR_LOOKAHEAD, notifier_lease_seconds=8)


@pytest.fixture
def database(settings: Settings) -> Database:
    db = Database(settings.database_url)
    db.migrate()
    yield db  # type: ignore[misc]
    db.close()


def consumers(conn: redis.Redis, settings: Settings) -> dict[str, int]:
    return {info["name"].decode(): int(info["pending"])
            for info in conn.xinfo_consumers(Keys.of(settings).fetched, PROCESSOR_GROUP)}


@pytest.mark.parametrize("how", ["timed-out", "cleared"])
def test_a_gone_processors_pending_entries_are_taken_by_another(settings: Settings, redis_conn: redis.Redis,
                                                                database: Database, how: str) -> None:
    """A processor on another host read two entries and then its host died (or it stopped cleanly, as before a
    restart under a new id): once its heartbeat is gone a running processor takes them, within the lease of its
    last beat, and then removes the gone consumer from the group."""
    keys = Keys.of(settings)
    feed_round_one(redis_conn, settings)
    gone = Processor(settings, redis_conn, database, name="0a0a0a0a0a0a", clock=lambda: REF_NOW)
    gone.consumer.ensure_group()
    beat_elsewhere(redis_conn, keys, gone.heartbeat_name, timeout=gone.timing.timeout)  # its last beat
    last_beat = time.monotonic()
    assert len(gone.consumer.new(10, None)) == 2  # read, never acknowledged

    own_db = Database(settings.database_url)  # a connection of its own: it runs in another thread
    survivor = Processor(settings, redis_conn, own_db, name="1b1b1b1b1b1b", clock=lambda: REF_NOW)
    running = threading.Thread(target=survivor.run, args=(False,))
    running.start()
    try:
        if how == "cleared":
            time.sleep(0.5)  # the survivor's first look finds it alive and leaves its entries alone
            assert alerts(database) == [] and consumers(redis_conn, settings)["0a0a0a0a0a0a"] == 2
            heartbeat.clear(redis_conn, keys, gone.heartbeat_name)
            cleared = time.monotonic()
        while len(alerts(database)) < 2 or redis_conn.xpending(keys.fetched, PROCESSOR_GROUP)["pending"]:
            assert time.monotonic() - last_beat < settings.notifier_lease_seconds, "not taken within the lease"
            time.sleep(0.05)
        taken = time.monotonic()
        if how == "timed-out":
            assert taken - last_beat >= gone.timing.timeout  # not before its heartbeat timed out
        else:
            assert taken - cleared <= survivor.timing.check_every + 1
        while "0a0a0a0a0a0a" in consumers(redis_conn, settings):  # at the next look, with nothing pending
            assert time.monotonic() - taken < 2 * survivor.timing.check_every + 2, "the gone consumer stayed"
            time.sleep(0.05)
    finally:
        survivor.stop.set()
        running.join(timeout=10)
        own_db.close()
    assert consumers(redis_conn, settings) == {"1b1b1b1b1b1b": 0}


def test_entries_idle_past_the_lease_are_taken_even_from_a_live_consumer(settings: Settings,
                                                                          redis_conn: redis.Redis,
                                                                          database: Database) -> None:
    keys = Keys.of(settings)
    feed_round_one(redis_conn, settings)
    stuck = Processor(settings, redis_conn, database, name="2c2c2c2c2c2c", clock=lambda: REF_NOW)
    stuck.consumer.ensure_group()
    beat_elsewhere(redis_conn, keys, stuck.heartbeat_name, timeout=stuck.timing.timeout)
    assert len(stuck.consumer.new(10, None)) == 2
    other = Processor(settings, redis_conn, database, name="3d3d3d3d3d3d", clock=lambda: REF_NOW)
    assert other.consumer.claim_idle_ms == 8000  # NOTIFIER_LEASE_SECONDS
    other.consumer.claim_idle_ms = 0  # as if they had idled past the lease
    assert other.run(burst=True) == 0
    assert len(alerts(database)) == 2 and consumers(redis_conn, settings) == {"2c2c2c2c2c2c": 0, "3d3d3d3d3d3d": 0}


# -- real processes: two processors on machines named alike ---------------------------------------------------
def _sofamon() -> list[str]:
    script = Path(sys.executable).with_name("sofamon")
    return [str(script)] if script.exists() else [sys.executable, "-m", "sofamon.cli"]


def test_two_processors_on_hosts_named_alike_are_two_in_status(
        settings: Settings, redis_conn: redis.Redis, database: Database, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Under supervisord on two hosts both processors used to be `processor`, with one heartbeat: status showed one
    for two. Now: two consumers, two heartbeats, two rows, both on host `clone-vm`; a clean stop leaves nothing."""
    keys = Keys.of(settings)
    env = {**os.environ, "REDIS_URL": settings.redis_url, "REDIS_PREFIX": settings.redis_prefix,
           "DATABASE_URL": settings.database_url, "NOTIFIER_LEASE_SECONDS": "8", "LOG_LEVEL": "INFO"}
    for name, value in {"REDIS_URL": settings.redis_url, "REDIS_PREFIX": settings.redis_prefix,
                        "DATABASE_URL": settings.database_url, "NOTIFIER_LEASE_SECONDS": "8"}.items():
        monkeypatch.setenv(name, value)
    procs = []
    for n in range(2):
        out = open(tmp_path / f"processor-{n}.log", "wb")  # noqa: SIM115 - closed with the process
        procs.append((subprocess.Popen(with_hostname([*_sofamon(), "process"], "clone-vm"), env=env, cwd=tmp_path,
                                       stdout=out, stderr=subprocess.STDOUT), out))
    try:
        deadline = time.monotonic() + 30
        while len([b for b in heartbeat.read_all(redis_conn, keys) if b.get("role") == "processor"]) < 2 \
                or len(redis_conn.exists(keys.fetched) and consumers(redis_conn, settings) or {}) < 2:
            assert all(p.poll() is None for p, _ in procs), _logs(tmp_path)
            assert time.monotonic() < deadline, f"two processors never showed up\n{_logs(tmp_path)}"
            time.sleep(0.05)
        report = build_report(gather(Settings(_env_file=None)))  # type: ignore[call-arg]
        instances = report["processes"]["processor"]["instances"]
        assert len(instances) == 2 and all(i["alive"] for i in instances)
        assert {i["host"] for i in instances} == {"clone-vm" if ROOT else instance.hostname()}
        assert len({i["name"] for i in instances}) == 2
        assert {f"processor:{c}" for c in consumers(redis_conn, settings)} == {i["name"] for i in instances}
        text = render(report)
        assert sum(1 for line in text.splitlines() if line.strip().startswith("processor  processor:")) == 2
        assert main(["status", "--json"]) in (0, 1)  # no fetcher nor notifier here: unhealthy, but listed
        listed = json.loads(capsys.readouterr().out)["processes"]["processor"]["instances"]
        assert sorted(i["name"] for i in listed) == sorted(i["name"] for i in instances)
        assert all(i["timeout"] == 4.0 and i["mode"] is None and i["pid"] for i in listed)
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(timeout=20) for proc, _ in procs]
        for _, out in procs:
            out.close()
    assert codes == [0, 0], _logs(tmp_path)
    assert [b for b in heartbeat.read_all(redis_conn, keys) if b.get("role") == "processor"] == []
    assert consumers(redis_conn, settings) == {}  # each left the group on its way out


def _logs(tmp_path: Path) -> str:
    return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(tmp_path.glob("processor-*.log")))
