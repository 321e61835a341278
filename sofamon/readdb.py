"""What the read-only commands (`alerts`, `report`) do with the database: open it, or say in one line why not."""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from shared.settings import Settings

if TYPE_CHECKING:
    from shared.storage import Database

T = TypeVar("T")


def read_database(settings: Settings, command: str, read: Callable[["Database"], T]) -> T | None:
    """`read(db)`, or None after one line on stderr when there is no database to read (a missing SQLite file).

    The driver and rich load only here: `sofamon fetch` parses the same command line and needs neither.
    """
    from shared import console
    from shared.storage import Database

    db = Database(settings.database_url)
    missing = db.missing()
    if missing is not None:
        console.show(f"sofamon {command}: {missing}", sys.stderr)
        return None
    try:
        return read(db)
    finally:
        db.close()
