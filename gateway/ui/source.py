"""One short-lived connection on which the console's tables can be queried, whatever the store.

The Store (gateway.store.backend) decides where each table lives; the console only asks it.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import duckdb

from gateway.store.backend import StoreRef, as_store


def open_store(store: StoreRef) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
    """Every store table by its bare name; the store is held only inside the block.

    A DuckDB file is opened read-write (as the gateway's own writer does, so the two share one
    database instance in the gateway process); writes to the small tables (annotations) land
    where the Store keeps them.
    """
    return as_store(store).connect()
