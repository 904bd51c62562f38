"""The adapter lifecycle as a pure transition function."""

from __future__ import annotations

STATES: tuple[str, ...] = ("candidate", "shadow", "canary", "stable", "retired")

# Forward along the rollout, back to candidate on rollback, retire from anywhere but retired.
_ALLOWED: dict[str, frozenset[str]] = {
    "candidate": frozenset({"shadow", "retired"}),
    "shadow": frozenset({"canary", "candidate", "retired"}),
    "canary": frozenset({"stable", "candidate", "retired"}),
    "stable": frozenset({"retired", "candidate"}),
    "retired": frozenset(),
}


class InvalidTransitionError(ValueError):
    """A state change the lifecycle does not allow."""


def next_state(current: str, target: str) -> str:
    """The state after asking to move `current` to `target`; staying put is allowed (idempotent)."""
    for state in (current, target):
        if state not in STATES:
            raise InvalidTransitionError(
                f"unknown adapter state {state!r}: use one of {', '.join(STATES)}"
            )
    if target == current or target in _ALLOWED[current]:
        return target
    allowed = sorted(_ALLOWED[current]) or ["none: retired is final, register a new version"]
    raise InvalidTransitionError(
        f"cannot move an adapter from {current} to {target}; from {current} it can go to: "
        f"{', '.join(allowed)}"
    )
