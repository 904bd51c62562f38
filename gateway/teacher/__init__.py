"""The demo teacher: a deterministic OpenAI-compatible server standing in for a paid LLM API."""
