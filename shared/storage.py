"""The database: SQLite (default, WAL) or PostgreSQL through one small interface and one schema."""
from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import psycopg

log = logging.getLogger(__name__)

# What a database error means for the data that caused it; the one place that says so.
# Transient: the database is unreachable or busy right now; the same data may work later.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (sqlite3.OperationalError, psycopg.OperationalError)
# Permanent: the database refuses this data and always will (a value out of range, text it cannot
# store, a broken constraint, an index row too large). Checked first: PostgreSQL's program limits
# are OperationalErrors to psycopg, yet retrying them only blocks everything behind them.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.DataError,
    psycopg.IntegrityError,
    psycopg.errors.ProgramLimitExceeded,
    sqlite3.DataError,
    sqlite3.IntegrityError,
    OverflowError,  # an int beyond SQLite's 64 bits
    UnicodeEncodeError,  # text neither database can encode (a lone surrogate)
)

# Each migration runs once, in order; the schema_version table records how far a database is.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE predictors (
        id TEXT PRIMARY KEY,
        nickname TEXT NOT NULL,
        slug TEXT,
        stats TEXT NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE tips (
        tip_key TEXT PRIMARY KEY,
        predictor_id TEXT NOT NULL,
        event_id BIGINT NOT NULL,
        vote TEXT NOT NULL,
        vote_type INTEGER,
        odds_decimal DOUBLE PRECISION,
        odds_fractional TEXT,
        start_ts BIGINT NOT NULL,
        home TEXT NOT NULL,
        away TEXT NOT NULL,
        alert_id BIGINT,
        movement_armed INTEGER NOT NULL DEFAULT 1,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX tips_event ON tips (event_id);
    CREATE TABLE odds_history (
        id {serial},
        event_id BIGINT NOT NULL,
        market_id INTEGER NOT NULL,
        choice TEXT NOT NULL,
        fractional TEXT NOT NULL,
        decimal DOUBLE PRECISION NOT NULL,
        observed_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX odds_history_event ON odds_history (event_id, market_id, choice, observed_at);
    CREATE TABLE alerts (
        id {serial},
        kind TEXT NOT NULL,
        webhook TEXT NOT NULL,
        predictor_id TEXT,
        event_id BIGINT,
        payload TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        created_at DOUBLE PRECISION NOT NULL,
        sent_at DOUBLE PRECISION,
        message_id TEXT,
        error TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        lease_owner TEXT,
        lease_until DOUBLE PRECISION
    );
    CREATE INDEX alerts_pending ON alerts (webhook, state, id);
    CREATE INDEX alerts_sent ON alerts (state, sent_at);
    """,
    # Odds history keeps every price on offer, told apart by choice group (e.g. goals 2.5 / 5.5).
    """
    ALTER TABLE odds_history ADD COLUMN choice_group TEXT;
    CREATE INDEX odds_history_latest ON odds_history (event_id, market_id, choice_group, choice, id);
    """,
    # What an alert came from, when that alone must not alert twice (a health transition re-read).
    """
    ALTER TABLE alerts ADD COLUMN source TEXT;
    CREATE UNIQUE INDEX alerts_source ON alerts (source);
    """,
    # The latest price of a choice is the one observed last, not the row written last (a replay writes old prices).
    """
    CREATE INDEX odds_history_observed ON odds_history (event_id, market_id, choice_group, choice, observed_at);
    DROP INDEX odds_history_latest;
    """,
    # How often alerts may have been posted twice, by why (shared/outbox.py), for `sofamon status`.
    """
    CREATE TABLE possible_duplicates (
        kind TEXT PRIMARY KEY,
        times BIGINT NOT NULL DEFAULT 0,
        alerts BIGINT NOT NULL DEFAULT 0,
        last_at DOUBLE PRECISION
    );
    """,
    # Every upcoming tip seen is kept, alerted or not yet: `state` is 'deferred' until its match comes
    # within the look-ahead, then 'alerted' ('deleted' when its predictor took it down first); `status` and
    # `start_ts` are its match as last observed, at `seen_at`; `page_keys` the tips of the page it was first
    # seen on (how a deletion is told, processor/deleted.py); `prediction` the tip as Sofascore gave it.
    """
    ALTER TABLE tips ADD COLUMN state TEXT NOT NULL DEFAULT 'alerted';
    ALTER TABLE tips ADD COLUMN status TEXT;
    ALTER TABLE tips ADD COLUMN seen_at DOUBLE PRECISION;
    ALTER TABLE tips ADD COLUMN page_keys TEXT;
    ALTER TABLE tips ADD COLUMN prediction TEXT;
    CREATE INDEX tips_state ON tips (state, predictor_id);
    """,
    # Tips by kick-off, so the queries of the processor's hot path read the tips they are about, not every
    # alerted or deferred tip ever stored: the events still ahead and the deferred tips waiting
    # (processor/dedup.py `upcoming_events`, `waiting`), a predictor's deferred tips (`deferred_of`).
    """
    CREATE INDEX tips_kickoff ON tips (state, start_ts);
    CREATE INDEX tips_deferred ON tips (state, predictor_id, start_ts);
    DROP INDEX tips_state;
    """,
    # The scorecard (shared/settlements.py): an alerted tip's result once its match is over, and the last price
    # of its market and pick seen before kick-off (the closing price) with when it was seen; the consensus
    # alerts' members (processor/consensus.py), one row per predictor and pick; the daily digests sent.
    """
    ALTER TABLE tips ADD COLUMN result TEXT;
    ALTER TABLE tips ADD COLUMN settled_at DOUBLE PRECISION;
    ALTER TABLE tips ADD COLUMN closing_decimal DOUBLE PRECISION;
    ALTER TABLE tips ADD COLUMN closing_at DOUBLE PRECISION;
    CREATE INDEX tips_alert ON tips (alert_id);
    CREATE INDEX tips_unsettled ON tips (state, result, start_ts);
    CREATE TABLE consensus_members (
        event_id BIGINT NOT NULL,
        market INTEGER NOT NULL,
        pick TEXT NOT NULL,
        predictor_id TEXT NOT NULL,
        alert_id BIGINT,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (event_id, market, pick, predictor_id)
    );
    CREATE TABLE digests (
        day TEXT PRIMARY KEY,
        alert_id BIGINT,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX alerts_created ON alerts (created_at);
    """,
    # Each predictor's record over their settled alerted tips, kept as running sums (shared/scorecard.Tally) by
    # the settlement that changes them (shared/settlements.py), so that an alert quotes it in one row's read
    # however many tips are stored. Filled from the tips already settled.
    """
    CREATE TABLE predictor_records (
        predictor_id TEXT PRIMARY KEY,
        won BIGINT NOT NULL DEFAULT 0,
        lost BIGINT NOT NULL DEFAULT 0,
        void BIGINT NOT NULL DEFAULT 0,
        staked BIGINT NOT NULL DEFAULT 0,
        returned DOUBLE PRECISION NOT NULL DEFAULT 0,
        closing_n BIGINT NOT NULL DEFAULT 0,
        clv_sum DOUBLE PRECISION NOT NULL DEFAULT 0,
        beat_n BIGINT NOT NULL DEFAULT 0
    );
    INSERT INTO predictor_records (predictor_id, won, lost, void, staked, returned, closing_n, clv_sum, beat_n)
    SELECT predictor_id,
        SUM(CASE WHEN result = 'won' THEN 1 ELSE 0 END),
        SUM(CASE WHEN result = 'lost' THEN 1 ELSE 0 END),
        SUM(CASE WHEN result = 'void' THEN 1 ELSE 0 END),
        SUM(CASE WHEN result IN ('won', 'lost') AND odds_decimal > 1 THEN 1 ELSE 0 END),
        SUM(CASE WHEN result = 'won' AND odds_decimal > 1 THEN odds_decimal - 1
                 WHEN result = 'lost' AND odds_decimal > 1 THEN -1 ELSE 0 END),
        SUM(CASE WHEN odds_decimal > 1 AND closing_decimal > 1 THEN 1 ELSE 0 END),
        SUM(CASE WHEN odds_decimal > 1 AND closing_decimal > 1 THEN odds_decimal / closing_decimal - 1 ELSE 0 END),
        SUM(CASE WHEN odds_decimal > 1 AND closing_decimal > 1
                  AND odds_decimal > closing_decimal THEN 1 ELSE 0 END)
    FROM tips WHERE state = 'alerted' AND result IS NOT NULL GROUP BY predictor_id;
    """,
    # Consensus members waiting for their announcement (alert_id NULL), found at the minute's sync.
    """
    CREATE INDEX consensus_pending ON consensus_members (alert_id, event_id);
    """,
    # The tips settled on a day, for the daily digest (shared/settlements.py `settled_between`): a tip is settled
    # whenever its result is first seen, however long after kick-off, so only its own time bounds it.
    # (Issue 11's digest; renumber freely when merging with another branch's migration: nothing names it by number.)
    """
    CREATE INDEX tips_settled ON tips (settled_at);
    """,
]


class Database:
    """A connection that reconnects after failures; `tx()` (writes) and `read()` are the only ways to run SQL.

    SQL is written once with `?` placeholders; for PostgreSQL they become `%s`.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = "postgresql" if url.startswith(("postgresql://", "postgres://")) else "sqlite"
        self._conn: Any = None

    # -- connection -------------------------------------------------------------------------
    def _connect(self) -> Any:
        if self.dialect == "postgresql":
            # Raw cursors take `$1` placeholders as they are: psycopg parses a `%s` query again each time it
            # has more than 50 parameters (a page's multi-row upsert), which cost more than running it.
            return psycopg.connect(self.url, autocommit=True, connect_timeout=10, cursor_factory=psycopg.RawCursor)
        path = self.sqlite_path
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves so writers queue instead of deadlocking.
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    @property
    def sqlite_path(self) -> str:
        return self.url.removeprefix("sqlite:///") or ":memory:"

    def missing(self) -> str | None:
        """Why a reading command should not open this database: an SQLite file that is not there (opening it
        would create an empty one). None when it may be opened."""
        if self.dialect == "sqlite" and self.sqlite_path != ":memory:" and not os.path.exists(self.sqlite_path):
            return f"no database file at {self.sqlite_path} (run `sofamon init-db`)"
        return None

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    @contextmanager
    def tx(self) -> Iterator["Tx"]:
        """A write transaction: committed when the block ends, rolled back on any error.

        On SQLite it takes the write lock at once (BEGIN IMMEDIATE), so writers queue instead of deadlocking.
        """
        with self._transaction(write=True) as tx:
            yield tx

    @contextmanager
    def read(self) -> Iterator["Tx"]:
        """A read-only transaction: one consistent view, and no write lock. Reads never queue behind a
        writer (SQLite: BEGIN DEFERRED, which in WAL mode reads beside a writer; PostgreSQL: READ ONLY);
        a write inside it is refused (SQLite's `query_only`), so a read can never take the lock by mistake.
        """
        with self._transaction(write=False) as tx:
            yield tx

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator["Tx"]:
        conn = self._connection()
        try:
            if self.dialect == "postgresql":
                with conn.transaction():
                    with conn.cursor() as cur:
                        if not write:
                            cur.execute("SET TRANSACTION READ ONLY")
                        yield Tx(cur, self.dialect)
            elif write:
                yield from self._sqlite(conn, "BEGIN IMMEDIATE")
            else:
                conn.execute("PRAGMA query_only = ON")
                try:
                    yield from self._sqlite(conn, "BEGIN DEFERRED")
                finally:
                    self._writable_again(conn)
        except TRANSIENT_ERRORS:
            # Drop the connection so the next transaction starts on a fresh one.
            self.close()
            raise

    def _sqlite(self, conn: sqlite3.Connection, begin: str) -> Iterator["Tx"]:
        conn.execute(begin)
        try:
            yield Tx(conn.cursor(), self.dialect)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _writable_again(self, conn: sqlite3.Connection) -> None:
        """After a read: the connection writes again, or it is dropped (never left read-only)."""
        try:
            conn.execute("PRAGMA query_only = OFF")
        except sqlite3.Error:
            self.close()

    def ping(self) -> None:
        """Raise a transient error unless the database takes a write now.

        A write, as handling an entry does: a database that answers reads but cannot write (disk
        full, locked by another writer past the busy timeout) is away too.
        """
        with self.tx() as tx:
            tx.execute("UPDATE schema_version SET version = version WHERE version = 1")

    # -- schema -----------------------------------------------------------------------------
    def migrate(self) -> int:
        """Bring the schema up to date; returns the number of migrations applied."""
        serial = "BIGSERIAL PRIMARY KEY" if self.dialect == "postgresql" else "INTEGER PRIMARY KEY AUTOINCREMENT"
        applied = 0
        with self.tx() as tx:
            if self.dialect == "postgresql":
                # Two processes starting at once must not both run a migration.
                tx.execute("SELECT pg_advisory_xact_lock(7391)")
            tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = tx.one("SELECT MAX(version) FROM schema_version")
            current = row[0] if row and row[0] is not None else 0
            for version, script in enumerate(MIGRATIONS, start=1):
                if version <= current:
                    continue
                for statement in script.format(serial=serial).split(";"):
                    if statement.strip():
                        tx.execute(statement)
                tx.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
                applied += 1
        return applied

    def size_bytes(self) -> int | None:
        if self.dialect == "postgresql":
            with self.read() as tx:
                row = tx.one("SELECT pg_database_size(current_database())")
            return int(row[0]) if row else None
        path = self.sqlite_path
        files = [path, path + "-wal"]
        return sum(os.path.getsize(f) for f in files if os.path.exists(f)) if path != ":memory:" else None


@lru_cache(maxsize=512)
def numbered(sql: str) -> str:
    """`?` placeholders as PostgreSQL's `$1`, `$2`, ... (the SQL here never has a `?` of its own)."""
    parts = sql.split("?")
    return parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], start=1))


class Tx:
    """A cursor inside a transaction, with the placeholder style of its database."""

    def __init__(self, cursor: Any, dialect: str) -> None:
        self._cur = cursor
        self._dialect = dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        if self._dialect == "postgresql":
            sql = numbered(sql)
        self._cur.execute(sql, tuple(params))
        return self._cur.rowcount

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.execute(sql, params)
        return [tuple(row) for row in self._cur.fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self.execute(sql, params)
        row = self._cur.fetchone()
        return tuple(row) if row is not None else None

