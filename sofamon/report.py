"""`sofamon report`: each predictor's record over the tips we alerted, best closing-line value first.

Reads the database only (shared/settlements.py); the figures are shared/scorecard.py's. `--since` is a
window on when the tips were alerted (the forms of `replay --since`; default 30 days), `--predictor` one
predictor (id or nickname). Figures from fewer than SCORECARD_MIN_SETTLED settled tips are shown but marked.
"""
from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from shared import console
from shared.scorecard import Figures, Row, by_predictor, signed_pct
from shared.settings import Settings
from shared.settlements import alerted_since
from sofamon.readdb import read_database

DEFAULT_SINCE = "30d"
TOO_FEW = "too few to judge"


def as_json(rows: list[Row], total: Figures, min_settled: int) -> str:
    def item(f: Figures) -> dict[str, Any]:
        return {**f.as_dict(), "enough_settled": f.enough(min_settled)}

    return json.dumps({"predictors": [{"id": r.id, "nickname": r.nickname, **item(r.figures)} for r in rows],
                       "total": item(total), "min_settled": min_settled}, indent=2)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}%"


def render(rows: list[Row], total: Figures, min_settled: int, window: str) -> str:
    if not rows:
        return f"no alerted tips in the last {window}"

    def cells(name: str, f: Figures) -> list[str]:
        return [name, str(f.alerted), str(f.settled), f"{f.won}-{f.lost}-{f.void}", signed_pct(f.roi_pct),
                signed_pct(f.clv_pct), _pct(f.beat_close_pct), "" if f.enough(min_settled) else TOO_FEW]

    table = [cells(r.nickname or r.id, r.figures) for r in rows] + [cells("all", total)]
    lines = [f"alerted tips of the last {window}, best closing-line value first"]
    lines += console.table(table, headers=["PREDICTOR", "ALERTED", "SETTLED", "W-L-V", "ROI", "CLV", "BEAT CLOSE",
                                           ""])
    lines.append(f"ROI: flat 1-unit stakes at the tip's odds; CLV: tip odds against the last price before kick-off;"
                 f" fewer than {min_settled} settled tips (SCORECARD_MIN_SETTLED) are {TOO_FEW}")
    return "\n".join(lines)


def run(settings: Settings, since: float, now: float, window: str, predictor: str | None = None,
        json_output: bool = False, out: TextIO | None = None) -> int:
    out = out if out is not None else sys.stdout
    scored = read_database(settings, "report", lambda db: alerted_since(db, since, now))
    if scored is None:
        return 1
    rows, total = by_predictor(scored, predictor)
    minimum = settings.scorecard_min_settled
    console.show(as_json(rows, total, minimum) if json_output else render(rows, total, minimum, window), out)
    return 0
