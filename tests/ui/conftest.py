"""The console's tests share one browser: keep each test's process environment to itself."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _environment_restored() -> Iterator[None]:
    # A `distill` command run in-process (CliRunner) may add variables to os.environ (secret
    # files); left there they would reach the browser's driver process started later.
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)
