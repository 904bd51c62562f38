"""Numbered migrations for the DuckDB log store; the tables are a contract (see DESIGN.md)."""

from __future__ import annotations

import duckdb

# Each entry is applied once, in order, and recorded in schema_migrations. Never edit an
# applied migration: add a new one.
MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE requests (
            id VARCHAR PRIMARY KEY,          -- x-distill-request-id; shadow rows get their own
            ts TIMESTAMPTZ NOT NULL,         -- when the gateway received the request
            route VARCHAR,                   -- route name, NULL when no route matched
            variant VARCHAR,                 -- 'teacher' or the student variant's name
            kind VARCHAR NOT NULL,           -- primary | shadow | fallback
            pair_id VARCHAR,                 -- shared by a primary row and its shadow/fallback rows
            endpoint VARCHAR NOT NULL,       -- chat | completions
            model VARCHAR,                   -- the model the client asked for
            upstream VARCHAR,                -- upstream name from the config
            upstream_model VARCHAR,          -- the model sent upstream (teacher model or adapter)
            request JSON,                    -- body as sent by the client (redacted, capped)
            response JSON,                   -- body as returned (streams assembled into one)
            status INTEGER,                  -- HTTP status returned for this attempt
            error VARCHAR,                   -- error message when the exchange failed
            stream BOOLEAN NOT NULL,
            latency_ms DOUBLE,               -- gateway receive -> last byte
            ttft_ms DOUBLE,                  -- gateway receive -> first content byte
            upstream_ms DOUBLE,              -- time spent waiting on the upstream
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            finish_reason VARCHAR,
            "user" VARCHAR,                  -- the request's `user` field
            session VARCHAR,                 -- x-distill-session header
            tags JSON,                       -- x-distill-tags header (JSON object)
            synthetic BOOLEAN DEFAULT false, -- generated, not real traffic
            replica VARCHAR                  -- which gateway process wrote the row
        );
        CREATE TABLE feedback (
            id VARCHAR PRIMARY KEY,
            ts TIMESTAMPTZ NOT NULL,
            request_id VARCHAR NOT NULL,
            score DOUBLE,                    -- e.g. 1 good, 0 bad, or a rating
            label VARCHAR,                   -- a corrected label, if the user gave one
            comment VARCHAR,
            source VARCHAR
        );
        CREATE TABLE adapters (
            name VARCHAR PRIMARY KEY,        -- the name vLLM serves it under
            path VARCHAR NOT NULL,
            base_model VARCHAR NOT NULL,
            route VARCHAR,
            state VARCHAR NOT NULL,          -- candidate | shadow | canary | stable | retired
            dataset_hash VARCHAR,
            lineage JSON,                    -- distill.json as written by the trainer
            metrics JSON,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL
        );
        CREATE TABLE rollouts (
            id VARCHAR PRIMARY KEY,
            route VARCHAR NOT NULL,
            adapter VARCHAR NOT NULL,
            state VARCHAR NOT NULL,          -- shadow | canary | paused | promoted | rolled_back
            step_index INTEGER NOT NULL,     -- -1 while in shadow
            steps JSON NOT NULL,             -- canary weights in percent, e.g. [1, 5, 25, 50, 100]
            gates JSON NOT NULL,
            step_started_at TIMESTAMPTZ,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL
        );
        CREATE TABLE rollout_decisions (
            id VARCHAR PRIMARY KEY,
            rollout_id VARCHAR NOT NULL,
            ts TIMESTAMPTZ NOT NULL,
            decision VARCHAR NOT NULL,       -- advance | hold | rollback | promote | pause | resume
            from_step INTEGER,
            to_step INTEGER,
            reason VARCHAR,
            numbers JSON                     -- the gate values behind the decision
        );
        CREATE TABLE runs (
            id VARCHAR PRIMARY KEY,
            ts TIMESTAMPTZ NOT NULL,
            kind VARCHAR NOT NULL,           -- train | eval | sweep
            sweep_id VARCHAR,
            dataset_hash VARCHAR,
            base_model VARCHAR,
            config JSON,
            metrics JSON,
            adapter_path VARCHAR
        );
        """,
    ),
    (
        2,
        """
        ALTER TABLE requests ADD COLUMN client VARCHAR;  -- name of the client API key used
        """,
    ),
    (
        3,
        """
        -- What people say about logged exchanges: the latest row per (request_id, kind) wins.
        CREATE TABLE annotations (
            id VARCHAR PRIMARY KEY,
            ts TIMESTAMPTZ NOT NULL,
            request_id VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,           -- correction | exclude | include | label
            answer VARCHAR,                  -- kind correction: the gold assistant answer
            label VARCHAR,                   -- kind label: a label for the exchange
            author VARCHAR NOT NULL,         -- who (admin token name or CLI user)
            note VARCHAR
        );
        """,
    ),
    (
        4,
        """
        -- What the gateway doubted or supplied when logging a row: odd upstream fields stored
        -- NULL (e.g. a negative token count), usage counted from a stream, and the like.
        ALTER TABLE requests ADD COLUMN notes JSON;
        """,
    ),
]


def migrate(conn: duckdb.DuckDBPyConnection) -> int:
    """Apply pending migrations; return the schema version now in force."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ DEFAULT now())"
    )
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    current = int(row[0]) if row else 0
    for version, sql in MIGRATIONS:
        if version <= current:
            continue
        conn.execute("BEGIN")
        try:
            conn.execute(sql)
            conn.execute("INSERT INTO schema_migrations (version) VALUES (?)", [version])
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
        current = version
    return current


def latest_version() -> int:
    return MIGRATIONS[-1][0]
