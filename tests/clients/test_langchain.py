"""langchain-openai's ChatOpenAI through the gateway (chat and `use_responses_api=True`),
each call compared with the same call made directly to the teacher."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_openai import ChatOpenAI

from tests.fixtures.servers import GatewayServer, TeacherServer

MODEL = "gpt-4o-br"  # a teacher that compresses its answers with brotli
TICKET = "Hi, I was charged twice for my invoice. This is urgent."


def lookup_invoice(query: str) -> str:
    """Look an invoice up by a free-text query."""
    return "INV-7 paid twice"


def models(gateway: GatewayServer, teacher: TeacherServer, **kwargs: Any) -> list[ChatOpenAI]:
    return [
        ChatOpenAI(model=MODEL, base_url=s.base_url, api_key="sk-test", max_retries=0, **kwargs)
        for s in (gateway, teacher)
    ]


def test_chat_invoke_stream_and_tools(
    shared_gateway: GatewayServer, teacher_server: TeacherServer
) -> None:
    via, direct = models(shared_gateway, teacher_server)
    answer, expected = via.invoke(TICKET), direct.invoke(TICKET)
    assert answer.content == expected.content == "billing"
    assert answer.usage_metadata == expected.usage_metadata
    assert "".join(str(c.content) for c in via.stream(TICKET)) == "billing"

    tooled = [m.bind_tools([lookup_invoice]) for m in (via, direct)]
    calls = [m.invoke(TICKET).tool_calls for m in tooled]
    assert calls[0] == calls[1] and calls[0][0]["name"] == "lookup_invoice"
    history = [
        HumanMessage(TICKET),
        AIMessage("", tool_calls=calls[0]),
        ToolMessage(lookup_invoice(**calls[0][0]["args"]), tool_call_id=calls[0][0]["id"]),
    ]
    final = tooled[0].invoke(history)
    assert final.content == tooled[1].invoke(history).content == "Tool result: INV-7 paid twice"


def test_responses_api_invoke_and_stream(
    shared_gateway: GatewayServer, teacher_server: TeacherServer
) -> None:
    via, direct = models(shared_gateway, teacher_server, use_responses_api=True)
    answer, expected = via.invoke(TICKET), direct.invoke(TICKET)
    assert answer.text == expected.text == "billing"
    assert answer.usage_metadata == expected.usage_metadata
    assert answer.response_metadata.get("id") == expected.response_metadata.get("id")
    streamed = "".join(chunk.text for chunk in via.stream(TICKET))
    assert streamed == "billing"
    calls = [m.bind_tools([lookup_invoice]).invoke(TICKET).tool_calls for m in (via, direct)]
    assert calls[0] == calls[1] and calls[0][0]["name"] == "lookup_invoice"
