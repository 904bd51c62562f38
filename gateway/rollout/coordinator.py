"""What the rollout controller needs from whatever coordinates several gateway processes."""

from __future__ import annotations

from typing import Any, Protocol

from gateway.rollout.gates import Window
from gateway.rollout.window import Shared


class NotLeading(Exception):
    """This process lost leadership before a gate decision: it decides nothing."""


class Coordinator(Protocol):
    """A fleet's PostgreSQL (rollout.fleet) or one host's workers' files (rollout.host)."""

    instance: str
    scope: str  # whose numbers `windows` merges: "fleet" or "workers" (one host's)
    leading: bool
    lost: int  # times this process lost leadership it held

    def setup(self) -> None: ...

    def hold_leadership(self) -> bool: ...

    def confirm(self) -> bool: ...  # still leading, asked of the lock's holder just now

    # SQL run in the store transaction of a gate decision, matching one row only while this
    # process's leadership is current (a fencing token); None where there is none.
    def fence(self) -> tuple[str, list[Any]] | None: ...

    def step_down(self, reason: str) -> None: ...

    def release(self) -> None: ...

    def version(self) -> int: ...

    def lock(self) -> Any: ...  # a held change lock: pass it to current, bump and unlock

    def unlock(self, conn: Any) -> None: ...

    def current(self, conn: Any) -> int: ...

    def bump(self, conn: Any) -> int: ...

    def publish(self, step: str, numbers: dict[str, Shared]) -> None: ...

    def windows(self, step: str) -> dict[str, Window]: ...
