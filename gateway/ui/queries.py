"""The console's reads as SQL: filters, pagination and sorting happen in DuckDB, not in Python."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

# The last user message (chat) or the prompt (completions), and the answer, from the logged JSON.
PROMPT = "coalesce({r}.request->>'$.messages[#-1].content', {r}.request->>'$.prompt')"
ANSWER = (
    "coalesce({r}.response->>'$.choices[0].message.content', {r}.response->>'$.choices[0].text')"
)
KINDS = ("primary", "shadow", "fallback", "secondary")
STATUSES = ("ok", "error")
FEEDBACK = ("any", "negative", "positive", "none")
ANNOTATED = ("any", "none", "correction", "exclude", "include", "label")
MAX_PAGE = 500
EXCERPT = 240


def prompt(alias: str = "r") -> str:
    return PROMPT.format(r=alias)


def answer(alias: str = "r") -> str:
    return ANSWER.format(r=alias)


def _choice(name: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise ValueError(f"{name}={value!r}: use one of {', '.join(allowed)}")


def _http_code(value: str) -> bool:
    return value.isascii() and value.isdigit() and len(value) == 3


def _page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit={limit}: use 1 to {MAX_PAGE} rows per page")
    if offset < 0:
        raise ValueError(f"offset={offset}: must be 0 or more")


@dataclass(frozen=True)
class TrafficFilter:
    """What the traffic list shows; every field narrows it, None means no condition."""

    route: str | None = None
    variant: str | None = None
    kind: str | None = None  # primary | shadow | fallback
    status: str | None = None  # ok | error | an HTTP status code
    user: str | None = None
    text: str | None = None  # case-insensitive substring of the request or response JSON
    since: datetime | None = None
    until: datetime | None = None
    feedback: str | None = None  # any | negative (score <= 0) | positive | none
    annotated: str | None = None  # any | none | an annotation kind
    paired: bool = False  # only exchanges that have a shadow (or fallback) pair
    limit: int = 50
    offset: int = 0

    def __post_init__(self) -> None:
        _choice("kind", self.kind, KINDS)
        if self.status is not None and self.status not in STATUSES and not _http_code(self.status):
            raise ValueError(f"status={self.status!r}: use ok, error or an HTTP code like 502")
        _choice("feedback", self.feedback, FEEDBACK)
        _choice("annotated", self.annotated, ANNOTATED)
        _page(self.limit, self.offset)


def like_escape(text: str) -> str:
    """`text` as a literal inside a LIKE pattern (escape character: backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def traffic_where(f: TrafficFilter) -> tuple[str, dict[str, Any]]:
    """The WHERE clause (over `requests r`) and its named parameters."""
    conds: list[str] = ["TRUE"]
    params: dict[str, Any] = {}
    for column in ("route", "variant", "kind", "user"):
        value = getattr(f, column)
        if value:
            conds.append(f'r."{column}" = ${column}')
            params[column] = value
    if f.status == "ok":
        conds.append("r.status = 200 AND coalesce(r.error, '') = ''")
    elif f.status == "error":
        conds.append("(r.status IS DISTINCT FROM 200 OR coalesce(r.error, '') <> '')")
    elif f.status:
        conds.append("r.status = $status")
        params["status"] = int(f.status)
    if f.text:
        conds.append(
            "(r.request::VARCHAR ILIKE $text ESCAPE '\\' "
            "OR r.response::VARCHAR ILIKE $text ESCAPE '\\')"
        )
        params["text"] = "%" + like_escape(f.text) + "%"
    if f.since is not None:
        conds.append("r.ts >= $since")
        params["since"] = f.since
    if f.until is not None:
        conds.append("r.ts < $until")
        params["until"] = f.until
    scores = "SELECT request_id FROM feedback WHERE score {}"
    if f.feedback == "any":
        conds.append("r.id IN (SELECT request_id FROM feedback)")
    elif f.feedback == "none":
        conds.append("r.id NOT IN (SELECT request_id FROM feedback)")
    elif f.feedback == "negative":
        conds.append(f"r.id IN ({scores.format('<= 0')})")
    elif f.feedback == "positive":
        conds.append(f"r.id IN ({scores.format('> 0')})")
    if f.annotated == "any":
        conds.append("r.id IN (SELECT request_id FROM annotations)")
    elif f.annotated == "none":
        conds.append("r.id NOT IN (SELECT request_id FROM annotations)")
    elif f.annotated:
        conds.append("r.id IN (SELECT request_id FROM annotations WHERE kind = $annotated)")
        params["annotated"] = f.annotated
    if f.paired:
        conds.append("r.pair_id IN (SELECT pair_id FROM requests WHERE kind <> 'primary')")
    return " AND ".join(conds), params


def _dicts(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def traffic_page(conn: duckdb.DuckDBPyConnection, f: TrafficFilter) -> dict[str, Any]:
    """One page of exchanges, newest first, with the total that matched."""
    where, params = traffic_where(f)
    # A text search scans every JSON body: do that once and count and page from the matches.
    # Other filters are cheap to run twice, and materializing a million ids is not.
    how = "MATERIALIZED" if f.text else "NOT MATERIALIZED"
    # Pick the page's ids first and only then read their JSON: sorting whole rows for a deep
    # OFFSET cost seconds on a million rows (bench/ui_queries.py).
    page = (
        f"WITH m AS {how} (SELECT r.id, r.ts FROM requests r WHERE {where}), "
        "ids AS (SELECT id FROM m ORDER BY ts DESC, id DESC LIMIT $limit OFFSET $offset), "
        "page AS (SELECT r.id, r.ts, r.route, r.variant, r.kind, r.pair_id, r.status, "
        "r.error, r.stream, r.latency_ms, r.ttft_ms, r.prompt_tokens, r.completion_tokens, "
        f'r."user", left({prompt()}, {EXCERPT}) AS prompt, left({answer()}, {EXCERPT}) AS answer '
        "FROM requests r WHERE r.id IN (SELECT id FROM ids)) "
        "SELECT page.*, (SELECT min(score) FROM feedback fb WHERE fb.request_id = page.id) "
        "AS feedback, (SELECT string_agg(DISTINCT a.kind, ',' ORDER BY a.kind) FROM annotations "
        "a WHERE a.request_id = page.id) AS annotations, (SELECT count(*) FROM m) AS _total "
        "FROM page ORDER BY ts DESC, id DESC"
    )
    rows = _dicts(conn.execute(page, {**params, "limit": f.limit, "offset": f.offset}))
    total = int(rows[0]["_total"]) if rows else 0
    if not rows and f.offset:  # past the end: the total still describes the whole set
        found = conn.execute(f"SELECT count(*) FROM requests r WHERE {where}", params).fetchone()
        total = int(found[0]) if found else 0
    for row in rows:
        del row["_total"]
    return {"total": total, "limit": f.limit, "offset": f.offset, "rows": rows}


_EXCHANGE_COLUMNS = (
    "r.id, r.ts, r.route, r.variant, r.kind, r.pair_id, r.endpoint, r.model, r.upstream, "
    "r.upstream_model, r.request::VARCHAR AS request, r.response::VARCHAR AS response, r.status, "
    "r.error, r.stream, r.latency_ms, r.ttft_ms, r.upstream_ms, r.prompt_tokens, "
    'r.completion_tokens, r.finish_reason, r."user", r.session, r.tags::VARCHAR AS tags, '
    f"{prompt()} AS prompt, {answer()} AS answer"
)


def exchange(conn: duckdb.DuckDBPyConnection, request_id: str) -> dict[str, Any] | None:
    """One exchange with its pair, feedback and annotations (newest first)."""
    found = _dicts(
        conn.execute(f"SELECT {_EXCHANGE_COLUMNS} FROM requests r WHERE r.id = ?", [request_id])
    )
    if not found:
        return None
    item = found[0]
    item["pair"] = []
    if item["pair_id"]:
        item["pair"] = _dicts(
            conn.execute(
                f"SELECT {_EXCHANGE_COLUMNS} FROM requests r WHERE r.pair_id = ? AND r.id <> ? "
                "ORDER BY r.ts",
                [item["pair_id"], request_id],
            )
        )
    item["feedback"] = _dicts(
        conn.execute(
            "SELECT id, ts, score, label, comment, source FROM feedback WHERE request_id = ? "
            "ORDER BY ts DESC",
            [request_id],
        )
    )
    item["annotations"] = annotations_of(conn, request_id)
    return item


def annotations_of(conn: duckdb.DuckDBPyConnection, request_id: str) -> list[dict[str, Any]]:
    return _dicts(
        conn.execute(
            "SELECT id, ts, request_id, kind, answer, label, author, note FROM annotations "
            "WHERE request_id = ? ORDER BY ts DESC, id DESC",
            [request_id],
        )
    )


@dataclass(frozen=True)
class PairFilter:
    """Shadow pairs to compare: the student's answer against the answer users got."""

    route: str | None = None
    student: str | None = None
    order: str = "disagreement"  # disagreement | newest
    limit: int = 50
    offset: int = 0

    def __post_init__(self) -> None:
        _choice("order", self.order, ("disagreement", "newest"))
        _page(self.limit, self.offset)


def disagreement(a: str, b: str) -> str:
    """0 when the answers match after trimming and case, else the normalised edit distance."""
    x, y = f"lower(trim(coalesce({a}, '')))", f"lower(trim(coalesce({b}, '')))"
    return (
        f"CASE WHEN {x} = {y} THEN 0.0 ELSE "
        f"levenshtein({x}, {y}) / greatest(length({x}), length({y}), 1) END"
    )


def pairs_page(conn: duckdb.DuckDBPyConnection, f: PairFilter) -> dict[str, Any]:
    """Shadow pairs, worst first by default, with the share of pairs that agree exactly."""
    conds = ["s.kind = 'shadow'", "s.status = 200"]
    params: dict[str, Any] = {}
    if f.route:
        conds.append("s.route = $route")
        params["route"] = f.route
    if f.student:
        conds.append("s.variant = $student")
        params["student"] = f.student
    pairs = (
        "SELECT p.id AS primary_id, s.id AS shadow_id, s.route, p.variant AS baseline, "
        f"s.variant AS student, s.ts, left({prompt('p')}, {EXCERPT}) AS prompt, "
        f"{answer('p')} AS primary_answer, {answer('s')} AS student_answer "
        "FROM requests s JOIN requests p ON p.pair_id = s.pair_id AND p.kind = 'primary' "
        f"WHERE {' AND '.join(conds)}"
    )
    scored = (
        f"SELECT *, {disagreement('primary_answer', 'student_answer')} AS disagreement "
        f"FROM ({pairs})"
    )
    # One pass: the totals ride along as window aggregates instead of a second scoring scan.
    order = "disagreement DESC, ts DESC" if f.order == "disagreement" else "ts DESC"
    rows = _dicts(
        conn.execute(
            "SELECT *, count(*) OVER () AS _total, avg(disagreement) OVER () AS _mean, "
            "avg(CASE WHEN disagreement = 0 THEN 1.0 ELSE 0 END) OVER () AS _agree "
            f"FROM ({scored}) ORDER BY {order}, shadow_id LIMIT $limit OFFSET $offset",
            {**params, "limit": f.limit, "offset": f.offset},
        )
    )
    total, mean, agree = 0, None, None
    if rows:
        total, mean, agree = rows[0]["_total"], rows[0]["_mean"], rows[0]["_agree"]
    elif f.offset:  # past the end: the totals still describe the whole set
        summary = conn.execute(f"SELECT count(*) FROM ({pairs})", params).fetchone()
        total = summary[0] if summary else 0
    for row in rows:
        for key in ("_total", "_mean", "_agree"):
            del row[key]
    return {
        "total": int(total),
        "mean_disagreement": mean,
        "agreement_rate": agree,
        "limit": f.limit,
        "offset": f.offset,
        "rows": rows,
    }


def overview(conn: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Rows, errors and latency per route, variant and kind: the filter choices and a summary."""
    return _dicts(
        conn.execute(
            "SELECT route, variant, kind, count(*) AS requests, "
            "count(*) FILTER (WHERE status IS DISTINCT FROM 200) AS errors, "
            "quantile_cont(latency_ms, 0.5) AS p50_ms, quantile_cont(latency_ms, 0.95) AS p95_ms,"
            " min(ts) AS first_ts, max(ts) AS last_ts FROM requests GROUP BY ALL "
            "ORDER BY route NULLS LAST, kind, variant"
        )
    )


def annotation_counts(conn: duckdb.DuckDBPyConnection, route: str) -> dict[str, int]:
    """Per kind, the route's exchanges whose latest annotation of that kind says so.

    `exclude` and `include` cancel out: whichever of the two is newer holds.
    """
    rows = conn.execute(
        "WITH latest AS (SELECT request_id, kind, ts FROM annotations QUALIFY row_number() "
        "OVER (PARTITION BY request_id, kind ORDER BY ts DESC, id DESC) = 1), "
        "gate AS (SELECT request_id, arg_max(kind, ts) AS kind FROM latest "
        "WHERE kind IN ('exclude', 'include') GROUP BY request_id), "
        "effective AS (SELECT request_id, kind FROM latest WHERE kind IN ('correction', 'label') "
        "UNION ALL SELECT request_id, kind FROM gate WHERE kind = 'exclude') "
        "SELECT e.kind, count(*) FROM effective e JOIN requests r ON r.id = e.request_id "
        "WHERE r.route = ? GROUP BY ALL",
        [route],
    ).fetchall()
    return {str(kind): int(n) for kind, n in rows}


def runs(conn: duckdb.DuckDBPyConnection, limit: int = 200) -> list[dict[str, Any]]:
    return _dicts(
        conn.execute(
            "SELECT id, ts, kind, sweep_id, dataset_hash, base_model, config::VARCHAR AS config, "
            "metrics::VARCHAR AS metrics, adapter_path FROM runs ORDER BY ts DESC LIMIT ?",
            [limit],
        )
    )


def run(conn: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any] | None:
    rows = _dicts(
        conn.execute("SELECT id, kind, config::VARCHAR AS config FROM runs WHERE id = ?", [run_id])
    )
    return rows[0] if rows else None


def adapters(conn: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    return _dicts(
        conn.execute(
            "SELECT name, path, base_model, route, state, dataset_hash, lineage::VARCHAR AS "
            "lineage, metrics::VARCHAR AS metrics, created_at, updated_at FROM adapters "
            "ORDER BY created_at DESC"
        )
    )
