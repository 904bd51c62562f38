"""The chart takes every upstream transport setting the gateway has, and refuses misspelt ones."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from gateway.config import parse_config
from tests.deploy.chart import one, render

TRANSPORT: dict[str, Any] = {
    "stream_idle_timeout_s": 20,
    "stream_deadline_s": 900,
    "stream_usage": False,
    "forward_headers": ["x-team"],
    "max_response_bytes": 1048576,
}


def test_upstream_transport_settings_reach_the_gateway() -> None:
    docs = render({"config": {"upstreams": {"teacher": TRANSPORT}}})
    rendered = yaml.safe_load(one(docs, "ConfigMap", "-gateway")["data"]["distill.yaml"])
    teacher = parse_config(rendered, source="chart").upstreams["teacher"]
    assert {k: getattr(teacher, k) for k in TRANSPORT} == TRANSPORT


def test_a_misspelt_upstream_setting_fails_at_render() -> None:
    with pytest.raises(Exception, match="stream_usages"):
        render({"config": {"upstreams": {"teacher": {"stream_usages": False}}}})
