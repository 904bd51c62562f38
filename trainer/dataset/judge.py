"""A judge model behind an OpenAI-compatible endpoint (the gateway) picks among teacher answers."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import openai

JUDGE_SYSTEM_PROMPT = (
    "Judge the candidate answers to the input below. Reply with the number of the correct "
    "candidate only."
)
TAGS_HEADER = "x-distill-tags"  # the gateway logs it; `distill_tool` keeps these out of datasets
GIVE_UP_AFTER = 5  # failed calls in a row, from the first, after which the judge is not asked
_NUMBER = re.compile(r"\d+")


def judge_prompt(
    messages: Sequence[dict[str, str]], candidates: Sequence[str]
) -> list[dict[str, str]]:
    """The chat request a judge answers: the task's instructions, input and numbered answers."""
    system = "\n".join(m["content"] for m in messages if m["role"] in ("system", "developer"))
    user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    body = [f"Instructions:\n{system}"] if system else []
    body.append(f"Input:\n{user}")
    body.append("Candidates:\n" + "\n".join(f"{i + 1}. {c}" for i, c in enumerate(candidates)))
    return [
        {"role": "system", "content": JUDGE_SYSTEM_PROMPT},
        {"role": "user", "content": "\n\n".join(body)},
    ]


def parse_verdict(text: str, n_candidates: int) -> int | None:
    """0-based index of the candidate the judge named, None when it named none in range."""
    match = _NUMBER.search(text)
    if match is None:
        return None
    index = int(match.group()) - 1
    return index if 0 <= index < n_candidates else None


class HttpJudge:
    """Asks `model` at `base_url` (the gateway, so the call is logged like any app's)."""

    def __init__(self, base_url: str, model: str, api_key: str = "none", timeout_s: float = 30):
        self.client = openai.OpenAI(
            base_url=base_url,
            api_key=api_key,
            timeout=timeout_s,
            max_retries=1,
            default_headers={TAGS_HEADER: json.dumps({"distill_tool": "judge"})},
        )
        self.model = model
        self.asked = 0  # examples the judge was asked about
        self.calls = 0  # requests sent
        self.failures = 0
        self.base_url = base_url

    def stats(self) -> dict[str, object]:
        return {
            "base_url": self.base_url,
            "model": self.model,
            "asked": self.asked,
            "calls": self.calls,
            "failures": self.failures,
        }

    def __call__(self, messages: Sequence[dict[str, str]], candidates: Sequence[str]) -> int | None:
        self.asked += 1
        if self.failures >= GIVE_UP_AFTER and self.failures == self.calls:
            return None  # never answered yet: unreachable, stop waiting on it for every example
        self.calls += 1
        try:
            reply = self.client.chat.completions.create(
                model=self.model,
                messages=judge_prompt(messages, candidates),  # type: ignore[arg-type]
                temperature=0,
                max_tokens=8,
            )
        except openai.OpenAIError:
            # The build falls back to the configured teacher (or the primary) for this example.
            self.failures += 1
            return None
        return parse_verdict(reply.choices[0].message.content or "", len(candidates))
