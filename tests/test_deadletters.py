"""`sofamon dead-letters`: listing with reasons, retrying one, several or all (re-inject + delete)."""
from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import redis

from processor.deadletters import list_letters, retry
from shared.keys import Keys
from shared.settings import Settings
from shared.storage import Database
from sofamon.cli import main
from tests.fakes.sofascore import load_fixture
from tests.test_processor import FAR_LOOKAHEAD, GURU, alerts, burst, put


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str, redis_url: str,
             monkeypatch: pytest.MonkeyPatch) -> Settings:
    settings = make_settings(database_url=database_url, time_lookahead_hours=FAR_LOOKAHEAD)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("REDIS_PREFIX", settings.redis_prefix)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    return settings


def three_dead(conn: redis.Redis, settings: Settings, db: Database) -> list[str]:
    """Three unusable entries, processed: they end up as dead letters (their ids returned, in order)."""
    keys = Keys.of(settings)
    conn.xadd(keys.fetched, {"kind": "predictions", "subject": GURU})  # no payload
    put(conn, settings, "predictions", GURU, {"predictions": "not a list"})
    conn.xadd(keys.fetched, {"kind": "odds", "subject": "1", "fetched_at": "1", "payload": "{not json"})
    burst(settings, conn, db)
    dead = [i.decode() for i, _f in conn.xrange(keys.dead_letters)]
    assert len(dead) == 3
    return dead


def test_list_shows_each_dead_letter_with_its_reason(settings: Settings, redis_conn: redis.Redis,
                                                    database: Database, capsys: pytest.CaptureFixture[str]) -> None:
    dead = three_dead(redis_conn, settings, database)
    reasons = [f[b"reason"].decode() for _i, f in redis_conn.xrange(Keys.of(settings).dead_letters)]
    assert main(["dead-letters"]) == 0
    out = capsys.readouterr().out
    for entry_id, reason in zip(dead, reasons):
        line = next(line for line in out.splitlines() if line.startswith(entry_id))
        assert reason[:60] in line
    assert "3 dead letter(s)" in out

    assert main(["dead-letters", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["count"] == 3
    assert [(d["id"], d["reason"], d["kind"]) for d in listed["dead_letters"]] == \
        list(zip(dead, reasons, ["predictions", "predictions", "odds"]))


def test_retry_reinjects_the_original_fields_and_deletes_the_dead_letter(
        settings: Settings, redis_conn: redis.Redis, database: Database, capsys: pytest.CaptureFixture[str]) -> None:
    keys = Keys.of(settings)
    dead = three_dead(redis_conn, settings, database)
    original = json.loads(redis_conn.xrange(keys.dead_letters, dead[1], dead[1])[0][1][b"fields"])
    length = redis_conn.xlen(keys.fetched)

    assert main(["dead-letters", "--retry", dead[1]]) == 0
    assert "1 of 1 dead letter(s) re-injected" in capsys.readouterr().out
    assert [d.id for d in list_letters(redis_conn, keys)] == [dead[0], dead[2]]
    assert redis_conn.xlen(keys.fetched) == length + 1
    _new_id, fields = redis_conn.xrevrange(keys.fetched, count=1)[0]
    assert {k.decode(): v.decode() for k, v in fields.items()} == original

    # Still unusable: the processor simply dead-letters it again, as a new entry.
    burst(settings, redis_conn, database)
    again = list_letters(redis_conn, keys)
    assert len(again) == 3 and again[-1].id not in dead and again[-1].source_id == _new_id.decode()


def test_a_dead_letter_that_is_fine_now_is_processed_after_a_retry(settings: Settings, redis_conn: redis.Redis,
                                                                   database: Database) -> None:
    """E.g. dead-lettered by a bug since fixed: the retry produces its alerts."""
    keys = Keys.of(settings)
    page = {"kind": "predictions", "subject": GURU, "fetched_at": "1795348800.0",
            "payload": json.dumps(load_fixture(f"user-{GURU}-page0.json"))}
    entry = redis_conn.xadd(keys.dead_letters, {"source_id": "1-0", "source_stream": keys.fetched,
                                                "reason": "a bug", "fields": json.dumps(page)}).decode()
    assert retry(redis_conn, keys, entry).ok
    burst(settings, redis_conn, database)
    assert len(alerts(database)) == 2
    assert redis_conn.xlen(keys.dead_letters) == 0


def test_retry_all_and_unknown_ids(settings: Settings, redis_conn: redis.Redis, database: Database,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    keys = Keys.of(settings)
    dead = three_dead(redis_conn, settings, database)
    length = redis_conn.xlen(keys.fetched)

    assert main(["dead-letters", "--retry", "1-1", dead[0]]) == 1  # one of them does not exist
    out = capsys.readouterr().out
    assert "1-1: not retried: no such dead letter" in out and f"{dead[0]}: re-injected as" in out
    assert main(["dead-letters", "--retry", "nonsense"]) == 1
    assert "nonsense: not retried" in capsys.readouterr().out

    assert main(["dead-letters", "--retry-all", "--json"]) == 0
    retried = json.loads(capsys.readouterr().out)["retried"]
    assert [r["id"] for r in retried] == dead[1:] and all(r["ok"] for r in retried)
    assert redis_conn.xlen(keys.dead_letters) == 0
    assert redis_conn.xlen(keys.fetched) == length + 3


def test_an_unreadable_dead_letter_is_left_in_place(settings: Settings, redis_conn: redis.Redis,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    keys = Keys.of(settings)
    entry = redis_conn.xadd(keys.dead_letters, {"source_id": "1-0", "reason": "r", "fields": "{oops"}).decode()
    assert main(["dead-letters"]) == 0
    assert "[original fields unreadable]" in capsys.readouterr().out
    assert main(["dead-letters", "--retry", entry]) == 1
    assert redis_conn.xlen(keys.dead_letters) == 1 and redis_conn.xlen(keys.fetched) == 0


def test_show_prints_the_stored_payload_of_one_dead_letter(settings: Settings, redis_conn: redis.Redis,
                                                          database: Database,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    keys = Keys.of(settings)
    dead = three_dead(redis_conn, settings, database)
    stored = json.loads(redis_conn.xrange(keys.dead_letters, dead[1], dead[1])[0][1][b"fields"])
    assert main(["dead-letters", "--show", dead[1]]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"dead letter {dead[1]}")
    assert f"subject: {GURU}" in out and "reason:" in out
    # The payload, indented: every line of the pretty JSON is there.
    pretty = json.dumps(json.loads(stored["payload"]), indent=2)
    assert pretty in out and '"not a list"' in out

    assert main(["dead-letters", "--show", dead[2], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["id"] == dead[2] and shown["fields"]["payload"] == "{not json" and shown["kind"] == "odds"
    assert main(["dead-letters", "--show", dead[2]]) == 0
    assert "{not json" in capsys.readouterr().out  # not JSON: as stored

    assert main(["dead-letters", "--show", "1-1"]) == 1
    assert "no dead letter 1-1" in capsys.readouterr().err
    assert main(["dead-letters", "--show", "nonsense"]) == 1
    capsys.readouterr()
    assert redis_conn.xlen(keys.dead_letters) == 3  # showing changes nothing


def test_show_an_unreadable_dead_letter_prints_what_is_stored(settings: Settings, redis_conn: redis.Redis,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    keys = Keys.of(settings)
    entry = redis_conn.xadd(keys.dead_letters, {"source_id": "1-0", "reason": "r", "fields": "{oops"}).decode()
    assert main(["dead-letters", "--show", entry]) == 0
    out = capsys.readouterr().out
    assert "not readable as JSON" in out and "{oops" in out
