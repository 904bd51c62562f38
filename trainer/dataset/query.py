"""The dataset build's candidate query: the SQL lives with the store (gateway.store.candidates),
where the console counts with it too; here a BuildConfig picks the window and the filters."""

from __future__ import annotations

from gateway.store import candidates
from gateway.store.candidates import Query, params_for
from trainer.dataset.config import BuildConfig


def reason_expression(config: BuildConfig) -> str:
    return candidates.reason_expression(config.enabled)


def build_query(config: BuildConfig) -> Query:
    return candidates.candidate_query(
        config.route, since=config.since, until=config.until, enabled=config.enabled
    )


__all__ = ["Query", "build_query", "params_for", "reason_expression"]
