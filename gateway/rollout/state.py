"""A rollout's life: shadow, canary steps, promoted or rolled back (pure transitions)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from gateway.rollout.gates import Gates

SHADOW, CANARY, PAUSED, PROMOTED, ROLLED_BACK = (
    "shadow",
    "canary",
    "paused",
    "promoted",
    "rolled_back",
)
REPLACED = "replaced"  # a promoted rollout whose adapter a later promotion took over from
ACTIVE = (SHADOW, CANARY, PAUSED)
DEFAULT_STEPS = (1, 5, 25, 50, 100)


class RolloutError(ValueError):
    """A rollout command that does not apply to the rollout's current state."""


def check_steps(steps: tuple[float, ...]) -> tuple[float, ...]:
    if not steps:
        raise RolloutError("steps must list at least one canary percentage, e.g. 1,5,25,50,100")
    if any(not 0 < s <= 100 for s in steps) or list(steps) != sorted(set(steps)):
        raise RolloutError(f"steps must rise strictly within (0, 100], got {list(steps)}")
    if steps[-1] != 100:
        raise RolloutError(f"the last step must be 100 (full traffic), got {steps[-1]}")
    return steps


@dataclass(frozen=True)
class Rollout:
    id: str
    route: str
    adapter: str
    steps: tuple[float, ...] = DEFAULT_STEPS
    gates: Gates = field(default_factory=Gates)
    state: str = SHADOW
    step_index: int = -1  # -1: shadow
    paused_from: str | None = None
    shadow_rate: float = 0.5  # share of teacher-answered traffic mirrored to the candidate

    @property
    def weight(self) -> float:
        """The student's share of the route's traffic, in percent."""
        if self.state == PROMOTED:
            return 100.0
        if self.state == ROLLED_BACK or self.step_index < 0:
            return 0.0
        return self.steps[self.step_index]

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def advance(self) -> Rollout:
        if self.state not in (SHADOW, CANARY):
            raise RolloutError(f"cannot advance a rollout that is {self.state}")
        if self.step_index + 1 >= len(self.steps):
            return replace(self, state=PROMOTED)
        return replace(self, state=CANARY, step_index=self.step_index + 1)

    def promote(self) -> Rollout:
        if not self.active:
            raise RolloutError(f"cannot promote a rollout that is {self.state}")
        return replace(self, state=PROMOTED, step_index=len(self.steps) - 1, paused_from=None)

    def rollback(self) -> Rollout:
        """Back to 0 %: automatic on a failed gate, or by hand, also after promotion."""
        if not self.active and self.state != PROMOTED:
            raise RolloutError(f"cannot roll back a rollout that is {self.state}")
        return replace(self, state=ROLLED_BACK, paused_from=None)

    def pause(self) -> Rollout:
        if self.state not in (SHADOW, CANARY):
            raise RolloutError(f"cannot pause a rollout that is {self.state}")
        return replace(self, state=PAUSED, paused_from=self.state)

    def resume(self) -> Rollout:
        if self.state != PAUSED:
            raise RolloutError(f"cannot resume a rollout that is {self.state}, only a paused one")
        return replace(self, state=self.paused_from or SHADOW, paused_from=None)

    @property
    def registry_state(self) -> str:
        """The adapter registry's state that follows this rollout's."""
        return {
            SHADOW: "shadow",
            CANARY: "canary",
            PROMOTED: "stable",
            ROLLED_BACK: "candidate",
        }.get(self.paused_from or self.state, "candidate")
