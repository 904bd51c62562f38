"""`x-distill-tags` parsing: flat, bounded, never something the log cannot encode."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.tags import MAX_TAGS, TAG_CHARS, parse_tags


@pytest.mark.parametrize(
    ("header", "tags"),
    [
        (None, None),
        ("", None),
        ('{"team": "ops", "n": 3, "on": true}', {"team": "ops", "n": 3, "on": True}),
        ("team=ops, env = prod,broken,=x", {"team": "ops", "env": "prod"}),
        ('{"a": {"b": {"c": 1}}, "keep": "y"}', {"keep": "y"}),
        ('{"a": [1, 2]}', None),
        ("[1, 2]", None),
        ('"just a string"', None),
        ("[" * 300 + "]" * 300, None),
    ],
)
def test_parse_tags(header: str | None, tags: dict[str, Any] | None) -> None:
    assert parse_tags(header) == tags


def test_tags_are_bounded() -> None:
    many = ",".join(f"k{i}={'v' * 1000}" for i in range(500))
    tags = parse_tags(many)
    assert tags is not None and len(tags) == MAX_TAGS
    assert all(len(v) == TAG_CHARS for v in tags.values())
