"""Which variant answers a request: route lookup by model, sticky weighted assignment (pure)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gateway.config import DistillConfig, RouteConfig

TEACHER = "teacher"


@dataclass(frozen=True)
class Variant:
    """One way to answer a route: the teacher, or a student adapter."""

    name: str
    upstream: str
    model: str

    @property
    def is_teacher(self) -> bool:
        return self.name == TEACHER


def find_route(config: DistillConfig, model: str | None) -> RouteConfig | None:
    """The route whose `match` lists the model, else the default route, else None."""
    default = None
    for route in config.routes:
        if model is not None and model in route.match:
            return route
        if route.default:
            default = route
    return default


def sticky_key(user: object, session: str | None, request_id: str) -> str:
    """Who a request belongs to: the `user` field, else the session header, else itself."""
    if isinstance(user, str) and user:
        return f"user:{user}"
    if session:
        return f"session:{session}"
    return f"request:{request_id}"


def unit_point(route: str, key: str) -> float:
    """A stable point in [0, 1) for (route, key): the same user lands on the same point."""
    digest = hashlib.blake2b(f"{route}\x1f{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def choose(weights: Sequence[tuple[str, float]], point: float) -> str:
    """Variant by cumulative weight (percent); the teacher takes whatever remains.

    Students come first on the line, so raising a student's weight only moves users from the
    teacher to the student: nobody already on the student is moved back.
    """
    edge, percent = 0.0, point * 100  # in percent, so integer weights add up exactly
    for name, weight in weights:
        edge += weight
        if percent < edge:
            return name
    return TEACHER


def student_weights(
    route: RouteConfig, overrides: Mapping[str, float] | None = None
) -> list[tuple[str, float]]:
    """Each student's current weight in percent: a rollout's override, else the config's."""
    overrides = overrides or {}
    return [(s.name, overrides.get(s.name, s.weight)) for s in route.students]


def variant_for(route: RouteConfig, name: str) -> Variant:
    if name == TEACHER:
        return Variant(TEACHER, route.teacher.upstream, route.teacher.model)
    for student in route.students:
        if student.name == name:
            return Variant(student.name, student.upstream, student.model)
    raise KeyError(f"route {route.name!r} has no variant {name!r}")
