"""The stand-in teacher: a deterministic OpenAI-compatible server in place of a paid LLM API."""
