"""The adapter lifecycle: it lives with the registry's table in gateway.store (re-exported)."""

from gateway.store.adapter_states import STATES, InvalidTransitionError, next_state

__all__ = ["STATES", "InvalidTransitionError", "next_state"]
