"""Distill gateway: an OpenAI-compatible proxy that logs every exchange and routes to students."""

__version__ = "0.1.0"
