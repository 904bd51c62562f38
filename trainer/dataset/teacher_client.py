"""Ask a teacher through the gateway (so every call is logged), many prompts at a time."""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import openai

TAGS_HEADER = "x-distill-tags"


class TeacherCallError(RuntimeError):
    """The teacher could not be asked; the message says what failed and what to do."""


@dataclass(frozen=True)
class Ask:
    """One chat request: its messages, optional seed and tags (logged with the row)."""

    messages: list[dict[str, str]]
    seed: int | None = None
    tags: dict[str, Any] | None = None


class TeacherClient:
    """The official OpenAI client pointed at the gateway, with a few requests in flight."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str = "none",
        concurrency: int = 8,
        timeout_s: float = 60.0,
        max_tokens: int | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency={concurrency} must be at least 1")
        self.client = openai.OpenAI(
            base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=2
        )
        self.base_url = base_url
        self.model = model
        self.concurrency = concurrency
        self.max_tokens = max_tokens

    def ask(self, request: Ask) -> str:
        extra: dict[str, Any] = {}
        if request.seed is not None:
            extra["seed"] = request.seed
        if self.max_tokens is not None:
            extra["max_tokens"] = self.max_tokens
        headers = {TAGS_HEADER: json.dumps(request.tags)} if request.tags else None
        try:
            reply = self.client.chat.completions.create(
                model=self.model,
                messages=request.messages,  # type: ignore[arg-type]
                extra_headers=headers,
                **extra,
            )
        except openai.OpenAIError as exc:
            raise TeacherCallError(
                f"asking {self.model} at {self.base_url} failed: {exc}; check --base-url "
                "(the gateway's /v1 URL), --model (a model a route matches) and the API key"
            ) from exc
        text = reply.choices[0].message.content if reply.choices else None
        if not isinstance(text, str) or not text.strip():
            raise TeacherCallError(f"{self.model} at {self.base_url} returned no text")
        return text

    def ask_all(self, requests: Sequence[Ask]) -> list[str]:
        """Answers in request order; the first failure is raised once all have finished."""
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self.ask, requests))
