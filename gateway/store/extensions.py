"""DuckDB's DuckLake and Postgres extensions, loaded from their wheels' files (no download).

The package index ships both as `duckdb-extension-*` wheels for DuckDB 1.5.5 (the pin in
pyproject.toml); DuckDB's own INSTALL would fetch them from the network at run time, which a
pod without egress or a CI runner without a network cannot do. The Postgres extension loads
only under its internal name, `postgres_scanner`: the `duckdb-extension-postgres-scanner`
wheel ships it under that name.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import duckdb

NO_AUTOLOAD: dict[str, str | bool | int | float | list[str]] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}


class ExtensionMissingError(RuntimeError):
    """An extension wheel is not installed for this DuckDB."""


def _wheel_file(package: str, name: str) -> Path:
    spec = importlib.util.find_spec(package)
    version = duckdb.__version__
    if spec is None or spec.origin is None:
        raise ExtensionMissingError(
            f"the fleet store needs `pip install {package.replace('_', '-')}=={version}` "
            "(installed with distill; reinstall it)"
        )
    path = Path(spec.origin).parent / "extensions" / f"v{version}" / f"{name}.duckdb_extension"
    if not path.is_file():
        raise ExtensionMissingError(
            f"{path} not found: {package} does not match duckdb {version}; "
            f"`pip install {package.replace('_', '-')}=={version}`"
        )
    return path


def extension_files() -> dict[str, Path]:
    return {
        "ducklake": _wheel_file("duckdb_extension_ducklake", "ducklake"),
        "postgres": _wheel_file("duckdb_extension_postgres_scanner", "postgres_scanner"),
    }


def engine() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with DuckLake and Postgres loaded, and nothing fetched on demand."""
    conn = duckdb.connect(config=NO_AUTOLOAD)
    for path in extension_files().values():
        conn.execute(f"LOAD '{str(path).replace(chr(39), chr(39) * 2)}'")
    return conn


def load_httpfs(conn: duckdb.DuckDBPyConnection) -> None:
    """S3-compatible buckets (a fleet data path `s3://…`), from the httpfs extension's wheel."""
    path = _wheel_file("duckdb_extension_httpfs", "httpfs")
    conn.execute(f"LOAD '{str(path).replace(chr(39), chr(39) * 2)}'")
