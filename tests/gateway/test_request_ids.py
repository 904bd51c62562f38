"""Request ids: unique and shaped as documented."""

from __future__ import annotations

import re

from gateway.proxy import new_request_id


def test_ids_are_unique_and_shaped() -> None:
    ids = [new_request_id() for _ in range(5_000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"req_[0-9a-f]{24}", i) for i in ids)
