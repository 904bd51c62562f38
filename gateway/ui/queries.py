"""The console's reads as SQL: filters, pagination and sorting happen in DuckDB, not in Python."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb

from gateway.ui import ranking

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
MAX_OFFSET = 2**63 - 1  # DuckDB's OFFSET is a BIGINT: past it the query fails
EXCERPT = 240


# Where people's words sit in a logged body: chat messages (plain or as text parts), a
# completions prompt, the Responses API's input and output, and the answers. JSON keys, roles
# and ids are not text, so a search for "assistant" finds only messages that say it.
TEXT_PATHS = (
    ("request", "$.messages[*].content"),
    ("request", "$.messages[*].content[*].text"),
    ("request", "$.prompt"),
    ("request", "$.input"),
    ("request", "$.input[*].content"),
    ("request", "$.input[*].content[*].text"),
    ("request", "$.instructions"),
    ("response", "$.choices[*].message.content"),
    ("response", "$.choices[*].text"),
    ("response", "$.output[*].content[*].text"),
)


def message_text(alias: str = "r") -> str:
    """SQL for the exchange's message text, one string, newline-separated (no JSON keys)."""
    parts = []
    for column, path in TEXT_PATHS:
        value = f"json_extract_string({alias}.{column}, '{path}')"
        if "[*]" in path:
            # A list of strings; an element that is itself a list of parts comes back as JSON
            # text, which the [*].text path covers, so such elements are skipped here.
            value = (
                f"array_to_string(list_filter({value}, lambda x: NOT starts_with(x, '[')), chr(10))"
            )
        elif path == "$.input":
            value = f"CASE WHEN json_type({alias}.{column}, '{path}') = 'VARCHAR' THEN {value} END"
        parts.append(value)  # concat_ws skips NULLs
    return "concat_ws(chr(10), " + ", ".join(parts) + ")"


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
    if not 0 <= offset <= MAX_OFFSET:
        raise ValueError(f"offset={offset}: use 0 to {MAX_OFFSET}")


@dataclass(frozen=True)
class TrafficFilter:
    """What the traffic list shows; every field narrows it, None means no condition."""

    route: str | None = None
    variant: str | None = None
    kind: str | None = None  # primary | shadow | fallback
    status: str | None = None  # ok | error | an HTTP status code
    user: str | None = None
    text: str | None = None  # case-insensitive substring of the messages' text (no JSON keys)
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
        conds.append(f"{message_text()} ILIKE $text ESCAPE '\\'")
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


def annotation_target(conn: duckdb.DuckDBPyConnection, request_id: str) -> dict[str, Any] | None:
    """What an annotation needs to know about the exchange it is about (None: no such row)."""
    found = _dicts(
        conn.execute(
            f"SELECT r.id, r.kind, r.variant, {answer()} AS answer, (SELECT p.id FROM requests p "
            "WHERE p.pair_id = r.pair_id AND p.kind = 'primary' LIMIT 1) AS primary_id "
            "FROM requests r WHERE r.id = ?",
            [request_id],
        )
    )
    return found[0] if found else None


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
    order: str = "disagreement"  # disagreement (worst first) | newest
    limit: int = 50
    offset: int = 0

    def __post_init__(self) -> None:
        _choice("order", self.order, ("disagreement", "newest"))
        _page(self.limit, self.offset)


# Pairs scored per request for ranking: the newest this many (the rest are counted, not ranked).
MAX_SCORED = 5000


def pair_rows(
    conn: duckdb.DuckDBPyConnection, f: PairFilter, cap: int = MAX_SCORED
) -> tuple[int, list[dict[str, Any]]]:
    """How many shadow pairs match, and the newest `cap` of them with both answers."""
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
    rows = _dicts(
        conn.execute(
            f"SELECT *, count(*) OVER () AS _total FROM ({pairs}) "
            "ORDER BY ts DESC, shadow_id LIMIT $cap",
            {**params, "cap": cap},
        )
    )
    total = int(rows[0]["_total"]) if rows else 0
    for row in rows:
        del row["_total"]
    return total, rows


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


# Live traffic is what users were answered with: first attempts and fallbacks. Shadow mirrors
# and second opinions (secondary) are extra calls nobody saw, so the overview leaves them out.
LIVE_KINDS = ("primary", "fallback")


@dataclass(frozen=True)
class Prices:
    """Per-1k-token prices by upstream model, and each route's teacher model (for savings)."""

    models: dict[str, tuple[float, float]]  # model -> (prompt per 1k, completion per 1k)
    teachers: dict[str, str]  # route -> the teacher's upstream model

    def tables(self) -> dict[str, list[Any]]:
        routes = [r for r in self.teachers if self.teachers[r] in self.models]
        return {
            "price_model": list(self.models),
            "price_in": [p for p, _ in self.models.values()],
            "price_out": [c for _, c in self.models.values()],
            "teacher_route": routes,
            "teacher_in": [self.models[self.teachers[r]][0] for r in routes],
            "teacher_out": [self.models[self.teachers[r]][1] for r in routes],
        }


def live_span(conn: duckdb.DuckDBPyConnection, since: datetime | None) -> tuple[Any, Any]:
    """The first and last time of live traffic (since `since`), or (None, None)."""
    found = conn.execute(
        "SELECT min(ts), max(ts) FROM requests WHERE kind IN ('primary', 'fallback') "
        "AND ($since IS NULL OR ts >= $since)",
        {"since": since},
    ).fetchone()
    return (found[0], found[1]) if found else (None, None)


def unpriced_models(
    conn: duckdb.DuckDBPyConnection, since: datetime | None, priced: list[str]
) -> list[str]:
    """Upstream models that served live traffic (since `since`) but have no configured price."""
    rows = conn.execute(
        "SELECT DISTINCT upstream_model FROM requests WHERE kind IN ('primary', 'fallback') "
        "AND upstream_model IS NOT NULL AND NOT list_contains($priced, upstream_model) "
        "AND ($since IS NULL OR ts >= $since) ORDER BY 1",
        {"priced": priced, "since": since},
    ).fetchall()
    return [str(r[0]) for r in rows]


def overview_series(
    conn: duckdb.DuckDBPyConnection, bucket_s: int, since: datetime | None, prices: Prices
) -> list[dict[str, Any]]:
    """Live traffic per time bucket, route and variant, and per route and variant overall
    (rows whose `bucket` is NULL): volume, errors, latency, TTFT, tokens and cost.

    `cost_usd` prices each row's tokens at its upstream model's price; `teacher_cost_usd`
    prices the same tokens at the route's teacher's, so their difference is what serving
    those rows from a student saved.
    """
    cost = (
        "coalesce({t}_in, 0) * prompt_tokens / 1000 "
        "+ coalesce({t}_out, 0) * completion_tokens / 1000"
    )
    sql = (
        "WITH price AS (SELECT unnest($price_model) AS model, unnest($price_in) AS price_in, "
        "unnest($price_out) AS price_out), "
        "teacher AS (SELECT unnest($teacher_route) AS route, unnest($teacher_in) AS teacher_in, "
        "unnest($teacher_out) AS teacher_out), "
        "live AS (SELECT r.ts, r.route, r.variant, r.status, r.error, r.latency_ms, r.ttft_ms, "
        "coalesce(r.prompt_tokens, 0) AS prompt_tokens, "
        "coalesce(r.completion_tokens, 0) AS completion_tokens, "
        "price.price_in, price.price_out, teacher.teacher_in, teacher.teacher_out "
        "FROM requests r LEFT JOIN price ON price.model = r.upstream_model "
        "LEFT JOIN teacher ON teacher.route = r.route "
        "WHERE r.kind IN ('primary', 'fallback') AND ($since IS NULL OR r.ts >= $since)) "
        "SELECT time_bucket(to_seconds($bucket_s), ts, TIMESTAMPTZ '2000-01-01 00:00:00+00') "
        "AS bucket, route, variant, count(*) AS requests, "
        "count(*) FILTER (WHERE status IS DISTINCT FROM 200 OR coalesce(error, '') <> '') "
        "AS errors, quantile_cont(latency_ms, 0.5) AS p50_ms, "
        "quantile_cont(latency_ms, 0.95) AS p95_ms, quantile_cont(ttft_ms, 0.5) AS ttft_p50_ms, "
        "quantile_cont(ttft_ms, 0.95) AS ttft_p95_ms, sum(prompt_tokens) AS prompt_tokens, "
        "sum(completion_tokens) AS completion_tokens, "
        f"sum({cost.format(t='price')}) AS cost_usd, "
        f"sum({cost.format(t='teacher')}) AS teacher_cost_usd "
        "FROM live GROUP BY GROUPING SETS ((bucket, route, variant), (route, variant)) "
        "ORDER BY bucket NULLS FIRST, route NULLS LAST, variant"
    )
    params = {**prices.tables(), "since": since, "bucket_s": bucket_s}
    return _dicts(conn.execute(sql, params))


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


def pairs_page(
    conn: duckdb.DuckDBPyConnection,
    f: PairFilter,
    mode: str = "normalized",
    confusion: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Shadow pairs ranked by `mode`'s disagreement (gateway.ui.ranking), one page of them."""
    total, rows = pair_rows(conn, f)
    ranked = ranking.rank(
        rows, mode, order=f.order, offset=f.offset, limit=f.limit, confusion=confusion
    )
    return {"total": total, "limit": f.limit, "offset": f.offset, **ranked}


def parse_time(name: str, value: str | None) -> datetime | None:
    """A since/until filter as an aware datetime (UTC when no zone is given)."""
    if value is None or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            f"{name}={value!r} is not a time: use ISO 8601 in UTC, e.g. 2025-01-31T12:00"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
