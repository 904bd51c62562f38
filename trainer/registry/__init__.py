"""The adapter registry: versions, lineage and rollout state, kept in the log store."""

from trainer.registry.registry import (
    AdapterNotFoundError,
    AdapterRecord,
    get_adapter,
    list_adapters,
    register_adapter,
    set_state,
    transition_adapter,
)
from trainer.registry.states import STATES, InvalidTransitionError, next_state
from trainer.registry.validate import AdapterError

__all__ = [
    "STATES",
    "AdapterError",
    "AdapterNotFoundError",
    "AdapterRecord",
    "InvalidTransitionError",
    "get_adapter",
    "list_adapters",
    "next_state",
    "register_adapter",
    "set_state",
    "transition_adapter",
]
