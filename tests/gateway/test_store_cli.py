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


def test_stats_reads_a_parquet_directory(tmp_path: Path) -> None:
    """`--store DIR` (format: parquet) used to crash opening the directory as a DuckDB file."""
    from gateway.config import StoreConfig
    from gateway.metrics import Metrics
    from gateway.store.writer import LogWriter
    from tests.gateway.test_log_pipeline import record

    segments = tmp_path / "segments"
    config = StoreConfig(path=str(segments), format="parquet", spool_dir=str(tmp_path / "sp"))
    writer = LogWriter(config, Metrics(), replica="gw-0")
    for i in range(4):
        writer.submit("requests", record(i))
    writer.stop()
    result = CliRunner().invoke(distill, ["store", "stats", "--store", str(segments)])
    assert result.exit_code == 0, result.output
    assert "requests                      4" in result.output
    assert "r / teacher / primary: 4 (0)" in result.output
    missing = CliRunner().invoke(distill, ["store", "stats", "--store", str(tmp_path / "no")])
    assert missing.exit_code == 1 and "does not exist" in missing.output
