"""The SQL that selects a route's candidate training rows and tags every other row with the
filter that removes it: `distill dataset build` runs it, the console counts with it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# First matching WHEN wins, so the order here is the order the card counts in.
CONDITIONS: dict[str, str] = {
    "route": "r.route IS DISTINCT FROM $route",
    "shadow": "r.kind = 'shadow'",
    # The trainer's own calls (rationales, synthetic-input writing, judging) are not traffic.
    "data_tool": "json_extract_string(r.tags::JSON, '$.distill_tool') IS NOT NULL",
    "non_teacher": "r.variant IS DISTINCT FROM 'teacher'",
    "failed": "r.status IS DISTINCT FROM 200 OR coalesce(r.error, '') <> ''",
    "truncated": "r.finish_reason = 'length'",
}


@dataclass(frozen=True)
class Query:
    """SQL text with its named parameters; both go into the dataset card."""

    tagged: str  # every row in the time window with `reason` (NULL: kept)
    counts: str  # reason -> rows
    rows: str  # the kept rows with their worst feedback score, oldest first
    routes: str  # route -> rows in the window, for the "no such route" message
    params: dict[str, Any]


def _all(name: str) -> bool:
    return True


def reason_expression(enabled: Callable[[str], bool] = _all) -> str:
    """A CASE that names the first enabled SQL filter a row fails, NULL when it passes all."""
    whens = [f"WHEN {sql} THEN '{name}'" for name, sql in CONDITIONS.items() if enabled(name)]
    return "CASE " + " ".join(whens) + " END"


def candidate_query(
    route: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    enabled: Callable[[str], bool] = _all,
) -> Query:
    """Window on `ts`, tag by filter, join feedback; heavy lifting stays in DuckDB."""
    window = ["TRUE"]
    params: dict[str, Any] = {"route": route}
    if since is not None:
        window.append("r.ts >= $since")
        params["since"] = since
    if until is not None:
        window.append("r.ts < $until")
        params["until"] = until
    where = " AND ".join(window)
    tagged = f"SELECT r.*, {reason_expression(enabled)} AS reason FROM requests r WHERE {where}"
    counts = f"SELECT coalesce(reason, 'kept') AS reason, count(*) FROM ({tagged}) GROUP BY ALL"
    rows = (
        "WITH fb AS (SELECT request_id, min(score) AS min_score FROM feedback "
        "GROUP BY request_id) "
        'SELECT t.id, t.endpoint, t.request::VARCHAR, t.response::VARCHAR, t."user", '
        f"t.session, fb.min_score FROM ({tagged}) t LEFT JOIN fb ON fb.request_id = t.id "
        "WHERE t.reason IS NULL ORDER BY t.ts, t.id"
    )
    routes = (
        f"SELECT r.route, count(*) AS n FROM requests r WHERE {where} "
        "GROUP BY ALL ORDER BY n DESC, r.route"
    )
    return Query(tagged=tagged, counts=counts, rows=rows, routes=routes, params=params)


def params_for(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """Only the parameters `sql` names: DuckDB rejects unused named parameters."""
    return {k: v for k, v in params.items() if f"${k}" in sql}
