"""The upstream transport: what the teacher sent reaches the client, decoded, and is logged."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.fixtures.servers import GatewayFactory, GatewayServer
from tests.gateway.test_proxy import MESSAGES, client, rows, without_created

ENCODINGS = ("gzip", "deflate", "br", "zstd")


def teacher_models(*models: str) -> Any:
    """A config edit adding one route per teacher model name (the name selects behaviour)."""

    def edit(cfg: dict[str, Any]) -> None:
        cfg["routes"] += [
            {"name": f"r-{m}", "match": [m], "teacher": {"upstream": "teacher", "model": m}}
            for m in models
        ]

    return edit


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_compressed_answers_reach_the_client_decoded_and_are_logged(
    make_gateway: GatewayFactory, teacher_server: Any, encoding: str
) -> None:
    model = f"gpt-4o-{encoding}"
    server: GatewayServer = make_gateway(teacher_models(model))
    via = client(server).chat.completions.with_raw_response.create(model=model, messages=MESSAGES)
    direct = client(teacher_server).chat.completions.with_raw_response.create(
        model=model, messages=MESSAGES
    )
    assert direct.headers["content-encoding"] == encoding  # the upstream really compresses
    assert without_created(via.parse()) == without_created(direct.parse())
    assert via.parse().choices[0].message.content == "billing"

    streamed = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in client(server).chat.completions.create(
            model=model, messages=MESSAGES, stream=True
        )
        if chunk.choices
    )
    assert streamed == "billing"

    logged = rows(server)
    assert [r["status"] for r in logged] == [200, 200]
    for row in logged:
        response = orjson.loads(row["response"])
        assert response["choices"][0]["message"]["content"] == "billing"
        assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
        assert row["error"] is None
