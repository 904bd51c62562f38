"""Shared fixtures: real servers on 127.0.0.1 with free ports, one per test session where costly."""

pytest_plugins = [
    "tests.fixtures.servers",  # free ports, the demo teacher, the gateway under uvicorn
    "tests.fixtures.models",  # the tiny student model, a trained adapter, one vLLM server
    "tests.fixtures.postgres",  # a private PostgreSQL 15 server (fleet store)
]
