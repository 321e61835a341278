"""Markets a tip can be on: names for people, and which odds choice a vote corresponds to."""
from __future__ import annotations

MARKET_NAMES = {1: "Full time", 5: "Both teams to score", 6: "First team to score"}


def market_name(vote_type: int | None) -> str:
    if vote_type is None:
        return "Tip"
    return MARKET_NAMES.get(vote_type, f"Market {vote_type}")


def pick_label(vote: str, vote_type: int | None, home: str, away: str) -> str:
    """What a person reads for a vote: `1` on full time is the home team, `noGoal` is "No goal"."""
    lowered = vote.lower()
    if vote_type in (1, 6, None) and vote == "1":
        return f"{home} to win" if vote_type != 6 else f"{home} to score first"
    if vote_type in (1, 6, None) and vote == "2":
        return f"{away} to win" if vote_type != 6 else f"{away} to score first"
    if vote_type in (1, None) and lowered == "x":
        return "Draw"
    if lowered == "nogoal":
        return "No goal"
    if vote_type == 5 and lowered in ("yes", "no"):
        return lowered.capitalize()  # shown after the market name: "Both teams to score: Yes"
    return vote


def choice_name(vote: str, vote_type: int | None, home: str, away: str) -> str | None:
    """The odds choice a vote is priced by (`marketId` = `voteType`), or None when unknown."""
    lowered = vote.lower()
    if vote_type == 1 and vote in ("1", "X", "x", "2"):
        return vote.upper()
    if vote_type == 5 and lowered in ("yes", "no"):
        return lowered.capitalize()
    if vote_type == 6:
        return {"1": home, "2": away, "nogoal": "No goal"}.get(lowered)
    return None



# Sofascore's crowd polls (`GET /event/{id}/votes`) by market, each choice's count field and the vote it means.
CROWD_POLLS: dict[int, tuple[str, dict[str, str]]] = {
    1: ("vote", {"vote1": "1", "voteX": "X", "vote2": "2"}),
    5: ("both_teams_to_score_vote", {"voteYes": "yes", "voteNo": "no"}),
    6: ("first_team_to_score_vote", {"voteHome": "1", "voteNoGoal": "noGoal", "voteAway": "2"}),
}


def crowd_shares(polls: dict[str, dict[str, int] | None], vote_type: int | None) -> list[tuple[str, float]]:
    """(vote, percent of the market's votes) for each choice of the market's crowd poll; [] without one."""
    poll, choices = CROWD_POLLS.get(vote_type, ("", {})) if vote_type is not None else ("", {})
    counts = polls.get(poll) or {}
    total = sum(counts.get(field, 0) for field in choices)
    if not total:
        return []
    return [(vote, 100.0 * counts.get(field, 0) / total) for field, vote in choices.items()]
