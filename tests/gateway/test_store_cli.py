"""`distill store`: stats, migrate and a Parquet export that dataset build can read."""

from __future__ import annotations

from pathlib import Path

import duckdb
import httpx
from click.testing import CliRunner

from gateway.cli import main as distill
from tests.fixtures.servers import GatewayServer


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(distill, list(args))
    return result.exit_code, result.output


def test_stats_and_export(gateway_server: GatewayServer, tmp_path: Path) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "refund"}]}
    for _ in range(3):
        httpx.post(f"{gateway_server.base_url}/chat/completions", json=body)
    gateway_server.flush()
    store = str(gateway_server.store_path)
    code, out = run("store", "stats", "--store", store)
    assert code == 0 and "support-triage / teacher / primary: 3 (0)" in out
    code, out = run("store", "export", "--store", store, "--out", str(tmp_path / "snap"))
    assert code == 0, out
    rows = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{tmp_path}/snap/requests/*.parquet')"
    ).fetchall()
    assert rows == [(3,)]
    assert not list(tmp_path.glob(".snap.tmp-*"))
    code, out = run("store", "export", "--store", store, "--out", str(tmp_path / "snap"))
    assert code != 0 and "not empty" in out


def test_errors_and_migrate(tmp_path: Path) -> None:
    code, out = run("store", "stats", "--store", str(tmp_path / "missing.duckdb"))
    assert code != 0 and "does not exist" in out
    code, out = run("store", "migrate", "--store", str(tmp_path / "new.duckdb"))
    assert code == 0 and "schema version" in out
