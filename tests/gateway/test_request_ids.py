"""Request ids: unguessable, unique, and not repeated by a forked child."""

from __future__ import annotations

import os
import re

from gateway.proxy import new_request_id


def test_ids_are_unique_and_shaped() -> None:
    ids = [new_request_id() for _ in range(5_000)]  # crosses several 4 KiB pools
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"req_[0-9a-f]{24}", i) for i in ids)


def test_a_forked_child_draws_its_own_ids() -> None:
    new_request_id()  # the parent's pool is filled
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report its next ids, then leave without running pytest's teardown
        os.write(write, " ".join(new_request_id() for _ in range(3)).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 4096).decode().split()
    os.waitpid(pid, 0)
    parent = [new_request_id() for _ in range(3)]
    assert len(child) == 3 and not set(child) & set(parent)
