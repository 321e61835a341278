"""The dry-run printout: an alert as readable lines, printed when its webhook has no URL configured."""
from __future__ import annotations

from notifier.wording import (
    consensus_lines,
    consensus_title,
    digest_predictor_line,
    digest_settled_lines,
    digest_title,
    direction,
    match_name,
    match_url,
    movement_text,
    no_stats,
    profile_url,
    record_text,
    signed,
    tip_text,
)
from shared.alerts import AnyAlert, ConsensusAlert, DigestAlert, HealthAlert, NewTipAlert, StatsSummary
from shared.timefmt import utc_stamp


def _stats_line(label: str, stats: StatsSummary | None) -> str:
    missing = no_stats(stats)
    if missing is not None or stats is None:
        return f"{label}: {missing}"
    return (f"{label}: yield {signed(stats.yield_pct)} %, win rate {stats.win_rate:.1f} %"
            f" of {stats.total} tips, profit {signed(stats.profit, 2)} u")


def render_text(alert: AnyAlert, *, alert_id: int | None = None) -> str:
    """The alert as readable lines, for printing when no webhook is configured."""
    head = f"[alert #{alert_id}] " if alert_id is not None else ""
    if isinstance(alert, HealthAlert):
        return f"{head}[HEALTH {alert.level.upper()}] {alert.title}\n{alert.message}"
    if isinstance(alert, DigestAlert):
        return "\n".join([f"{head}[DIGEST] {digest_title(alert)}", *digest_settled_lines(alert),
                          f"Our record of each predictor, last {alert.window_days} days:",
                          *(f"- {r.nickname}: {digest_predictor_line(r)}" for r in alert.predictors)])
    match = alert.match
    if isinstance(alert, ConsensusAlert):
        return "\n".join([f"{head}[CONSENSUS] {match_name(match)}", consensus_title(alert),
                          f"Kick-off: {utc_stamp(match.start_ts, seconds=False)}", *consensus_lines(alert),
                          f"Match: {match_url(match)}"])
    if isinstance(alert, NewTipAlert):
        lines = [f"{head}[NEW TIP] {match_name(match)}"]
    else:
        lines = [f"{head}[LINE MOVEMENT, {direction(alert.tip_odds, alert.current_odds)}] {match_name(match)}"]
    lines.append(f"Predictor: {alert.predictor.nickname} ({profile_url(alert.predictor)})")
    lines.append(f"Kick-off: {utc_stamp(match.start_ts, seconds=False)}")
    if isinstance(alert, NewTipAlert):
        lines.extend(f"- {tip_text(tip)}" for tip in alert.tips)
        if (record := record_text(alert.record)) is not None:
            lines.append(record)
    else:
        lines.append(f"- {alert.tip.market}: {alert.tip.pick}")
        lines.append(f"Odds: {movement_text(alert.tip_odds, alert.current_odds)}")
    lines.append(_stats_line("All-time", alert.predictor.all_time))
    lines.append(_stats_line("Current", alert.predictor.current))
    lines.append(f"Match: {match_url(match)}")
    return "\n".join(lines)
