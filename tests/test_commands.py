"""Operator commands: `requeue`, `alerts`, `test-webhook`, `--version`; one-line errors of `init-db` and `make run`."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr
from rq.registry import FailedJobRegistry

from notifier.main import run as notify
from processor.predictors import upsert as upsert_predictor
from shared import outbox
from shared.alerts import DigestAlert, HealthAlert
from shared.jobs import alerts_queue
from shared.models import RankingEntry
from shared.settings import Settings
from shared.storage import Database
from sofamon.cli import main
from tests.conftest import TEST_REDIS_URL
from tests.fakes.discord import DEFAULT_WEBHOOK_TOKEN, FakeDiscord
from tests.test_notifier import TIMINGS, delivered_ids, enqueue, insert_alerts, make_alert, states
from tests.test_supervisord import VENV_BIN, Supervisor, wait_for

REPO = Path(__file__).resolve().parent.parent
HEALTH_TOKEN = "tok-HEALTH-secret-xyz"
CLOSED_PG = "postgresql://sofamon@127.0.0.1:1/nothing"
ZONED = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [A-Za-z0-9+\-]+")


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str, redis_url: str,
             monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings for in-process notifier runs, and the same in the environment for `main([...])`."""
    settings = make_settings(database_url=database_url, discord_messages_per_minute=1000, **TIMINGS)
    for name, value in (("REDIS_URL", settings.redis_url), ("REDIS_PREFIX", settings.redis_prefix),
                        ("DATABASE_URL", settings.database_url)):
        monkeypatch.setenv(name, value)
    return settings


@pytest.fixture
def fake() -> Iterator[FakeDiscord]:
    with FakeDiscord(webhooks={"111": DEFAULT_WEBHOOK_TOKEN, "999": HEALTH_TOKEN}, bucket_limit=5,
                     bucket_window=1.0, channel_per_minute=None) as server:
        yield server


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


# -- --version -------------------------------------------------------------------------------------


def test_version_comes_from_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"sofamon {version('sofascore-monitor')}"


# -- requeue ---------------------------------------------------------------------------------------


def test_requeue_on_a_non_zero_redis_db_delivers_the_failed_alerts(
        settings: Settings, fake: FakeDiscord, database: Database, redis_conn: redis.Redis,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The README's `rq requeue` spoke to db 0 only; `sofamon requeue` uses REDIS_URL, whatever its db."""
    db_number = redis_conn.connection_pool.connection_kwargs.get("db", 0)
    if db_number == 0:
        pytest.skip("TEST_REDIS_URL is db 0: this test is about any other db")
    settings = settings.model_copy(update={"discord_webhook_url": SecretStr(fake.url("111"))})
    monkeypatch.setenv("DISCORD_WEBHOOK_URL", fake.url("111"))
    ids = insert_alerts(database, 3)
    enqueue(redis_conn, ids, intervals=(0,))
    fake.fail_next(6, 502)  # each job and its one retry
    assert notify(settings, burst=True) == 0
    assert fake.responses == [502] * 6
    registry = FailedJobRegistry(queue=alerts_queue(redis_conn))
    assert sorted(registry.get_job_ids()) == sorted(outbox.job_id(i) for i in ids)

    # One alert's job; it gets its retries back: Discord fails once more and the retry delivers. (A job
    # delivers every pending alert of its webhook, packed into one message, so all three arrive.)
    assert main(["requeue", "--alert", str(ids[1])]) == 0
    assert f"re-queued 1 failed delivery job(s) on queue alerts (alert {ids[1]})" in capsys.readouterr().out
    assert sorted(registry.get_job_ids()) == sorted(outbox.job_id(i) for i in (ids[0], ids[2]))
    fake.fail_next(1, 502)
    assert notify(settings, burst=True) == 0
    assert fake.responses[6:] == [502, 200] and delivered_ids(fake) == ids
    # (The notifier's own health alerts run dry: no health webhook is configured here.)
    assert all(states(database)[i][0] == "sent" for i in ids), states(database)

    # Every other failed job: they run and find their alerts sent.
    assert main(["requeue"]) == 0
    assert "re-queued 2 failed delivery job(s)" in capsys.readouterr().out
    assert notify(settings, burst=True) == 0
    assert registry.get_job_ids() == [] and delivered_ids(fake) == ids

    assert main(["requeue"]) == 0
    assert "no failed delivery jobs" in capsys.readouterr().out
    assert main(["requeue", "--alert", "424242"]) == 1
    assert "alert 424242" in one_line(capsys.readouterr().err)


def test_requeue_with_redis_away_is_one_line(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2@127.0.0.1:1/3")
    assert main(["requeue"]) == 1
    line = one_line(capsys.readouterr().err)
    assert "Redis" in line and "hunter2" not in line


# -- alerts ----------------------------------------------------------------------------------------


def _predictor(db: Database, predictor_id: str, nickname: str) -> None:
    entry = RankingEntry.model_validate({"id": predictor_id, "nickname": nickname,
                                         "voteStatistics": {"allTime": {"total": 10}}})
    with db.tx() as tx:
        upsert_predictor(tx, entry, time.time())


def test_alerts_lists_recent_alerts_with_filters(settings: Settings, database: Database,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    now = time.time()
    with database.tx() as tx:
        # make_alert(i): predictor p{i % 7}, "Home i vs Away i"
        first = outbox.insert(tx, make_alert(1, "GoalGuru_88"), webhook="main", created_at=now - 7200,
                              predictor_id="p1", event_id=10_001)
        second = outbox.insert(tx, make_alert(2, "Tactico.ES"), webhook="main", created_at=now - 600,
                               predictor_id="p2", event_id=10_002)
        health = outbox.insert(tx, HealthAlert(title="Sofascore is blocking us", message="HTTP 403"),
                               webhook="health", created_at=now - 300)
    _predictor(database, "p1", "GoalGuru_88")
    outbox.mark_sent(database, [first], "1234567890", now - 7100)
    outbox.mark_failed(database, [second], "HTTP 400 code 50035: Invalid Form Body")

    assert main(["alerts"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if re.match(r"\d+\s+\d{4}-", line)]
    assert [int(r.split()[0]) for r in rows] == [health, second, first]  # newest first
    guru = next(r for r in rows if int(r.split()[0]) == first)
    assert "new_tip" in guru and "GoalGuru_88" in guru and "Home 1 vs Away 1" in guru and "sent" in guru
    assert len(ZONED.findall(guru)) == 2  # created and sent, each with its zone
    assert "Invalid Form Body" in next(r for r in rows if int(r.split()[0]) == second)
    assert "Sofascore is blocking us" in next(r for r in rows if int(r.split()[0]) == health)

    def listed(*args: str) -> list[int]:
        assert main(["alerts", "--json", *args]) == 0
        return [a["id"] for a in json.loads(capsys.readouterr().out)["alerts"]]

    assert listed("--state", "failed") == [second]
    assert listed("--state", "sent", "--state", "failed") == [second, first]
    assert listed("--kind", "health") == [health]
    assert listed("--predictor", "p2") == [second]
    assert listed("--predictor", "goalguru_88") == [first]  # a nickname, any case
    assert listed("--since", "1h") == [health, second]
    assert listed("--limit", "1") == [health]

    assert main(["alerts", "--json", "--state", "sent"]) == 0
    [sent] = json.loads(capsys.readouterr().out)["alerts"]
    assert sent["predictor"] == "GoalGuru_88" and sent["match"] == "Home 1 vs Away 1" and sent["state"] == "sent"
    assert sent["message_id"] == "1234567890" and sent["created_at"].endswith("+00:00")

    assert main(["alerts", "--limit", "2"]) == 0
    assert "2 most recent of 3" in capsys.readouterr().out
    assert main(["alerts", "--state", "dead"]) == 0
    assert "no alerts" in capsys.readouterr().out
    with database.tx() as tx:
        digest = outbox.insert(tx, DigestAlert(day="2026-11-21"), webhook="main", created_at=now)
    assert listed("--kind", "digest") == [digest]


def test_alerts_with_the_database_away_is_one_line(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DATABASE_URL", CLOSED_PG.replace("sofamon@", "sofamon:s3cret@"))
    assert main(["alerts"]) == 1
    line = one_line(capsys.readouterr().err)
    assert "database" in line and "s3cret" not in line


# -- test-webhook ----------------------------------------------------------------------------------


def test_test_webhook_posts_to_each_webhook_and_reports_discords_answer(
        settings: Settings, fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DISCORD_WEBHOOK_URL", fake.url("111"))
    monkeypatch.setenv("DISCORD_HEALTH_WEBHOOK_URL", fake.url("999"))
    assert main(["test-webhook"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert re.search(r"^main\b.*\bok\b.*HTTP 200", out, re.MULTILINE)
    assert re.search(r"^health\b.*\bok\b.*HTTP 200", out, re.MULTILINE)
    assert [m["webhook_id"] for m in fake.accepted] == ["111", "999"]
    [embed] = fake.accepted[0]["payload"]["embeds"]
    assert "test" in embed["title"].lower()
    assert fake.accepted[0]["payload"]["allowed_mentions"] == {"parse": []}  # pings nobody

    fake.set_broken("999", 404)
    fake.fail_next(1, 500)
    assert main(["test-webhook"]) == 1
    out = capsys.readouterr().out
    main_line = next(line for line in out.splitlines() if line.startswith("main"))
    health_line = next(line for line in out.splitlines() if line.startswith("health"))
    assert "FAILED" in main_line and "HTTP 500" in main_line
    assert "BROKEN" in health_line and "404" in health_line and "DISCORD_HEALTH_WEBHOOK_URL" in health_line
    for text in (captured.out + captured.err, out):
        assert DEFAULT_WEBHOOK_TOKEN not in text and HEALTH_TOKEN not in text and "/api/webhooks" not in text

    assert main(["test-webhook", "--webhook", "main"]) == 0
    assert "health" not in capsys.readouterr().out


def test_test_webhook_without_webhooks_says_so(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test-webhook"]) == 1
    out = capsys.readouterr().out
    assert "main" in out and "DISCORD_WEBHOOK_URL" in out and "not set" in out


# -- one-line errors: init-db and make run ----------------------------------------------------------


def _env(**values: str) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], **values}


def test_init_db_with_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "sofamon.cli", "init-db"], cwd=tmp_path, timeout=60,
                            env=_env(DATABASE_URL=CLOSED_PG), capture_output=True, text=True)
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert "Traceback" not in result.stderr and "init-db" in line and "database" in line


def _checkout(tmp_path: Path) -> Path:
    """A copy of what `make run` needs: scripts/run.sh, supervisord.conf and the venv."""
    home = tmp_path / "monitor"
    (home / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "run.sh", home / "scripts" / "run.sh")
    (home / ".venv").symlink_to(VENV_BIN.parent)
    return home


def test_make_run_with_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    home = _checkout(tmp_path)
    result = subprocess.run(["bash", str(home / "scripts" / "run.sh")], cwd=home, timeout=60,
                            env=_env(DATABASE_URL=CLOSED_PG), capture_output=True, text=True)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "database" in one_line(result.stderr)
    assert not (home / "var" / "supervisor.sock").exists()


_MINIMAL_SUPERVISOR = """\
[unix_http_server]
file=%(here)s/var/supervisor.sock
chmod=0700
[supervisord]
logfile=%(here)s/var/log/supervisord.log
pidfile=%(here)s/var/supervisord.pid
directory=%(here)s
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://%(here)s/var/supervisor.sock
[include]
files = var/supervisor.d/*.conf
"""


def test_a_second_make_run_stops_with_one_line_and_changes_nothing(tmp_path: Path, redis_url: str) -> None:
    home = _checkout(tmp_path)
    (home / "supervisord.conf").write_text(_MINIMAL_SUPERVISOR)
    (home / "var" / "log").mkdir(parents=True)
    (home / "var" / "supervisor.d").mkdir()
    # The first `make run`, with its embedded Redis's program (a stand-in that just sleeps).
    program = "[program:redis]\ncommand=sleep 600\n"
    (home / "var" / "supervisor.d" / "redis.conf").write_text(program)
    first = subprocess.Popen([str(VENV_BIN / "supervisord"), "-n", "-c", str(home / "supervisord.conf")],
                             cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    supervisor = Supervisor(home)
    try:
        wait_for(lambda: supervisor.states().get("redis", ("",))[0] == "RUNNING", 30, "the first run's programs")
        before = {p: p.read_bytes() for p in home.rglob("*") if p.is_file() and "log" not in p.parts}
        env = _env(REDIS_URL=TEST_REDIS_URL, DATABASE_URL=f"sqlite:///{home}/data/monitor.db")
        second = subprocess.run(["bash", str(home / "scripts" / "run.sh")], cwd=home, timeout=60, env=env,
                                capture_output=True, text=True)
        assert second.returncode != 0
        assert "already running" in one_line(second.stderr)
        after = {p: p.read_bytes() for p in home.rglob("*") if p.is_file() and "log" not in p.parts}
        assert after == before
        assert not (home / "data").exists()  # not even init-db ran
        assert supervisor.states()["redis"][0] == "RUNNING" and first.poll() is None
    finally:
        supervisor.ctl("shutdown")
        try:
            first.wait(30)
        except subprocess.TimeoutExpired:
            first.kill()


def test_a_stale_socket_of_a_dead_supervisord_does_not_count_as_running(tmp_path: Path) -> None:
    """After a crash (kill -9) the socket file stays: `make run` must still start."""
    import socket

    from sofamon import runguard

    home = _checkout(tmp_path)
    (home / "var").mkdir()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(home / "var" / "supervisor.sock"))
    stale.close()  # bound, never listening: like the file a killed supervisord leaves
    assert runguard.running(home) is None
