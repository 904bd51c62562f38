"""The adapter registry: versions, lineage and rollout state, kept in the log store."""
