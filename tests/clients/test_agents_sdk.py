"""The OpenAI Agents SDK through the gateway: a tool-using agent run, on the Responses API
(the SDK's default) and on chat completions, compared with the same run made directly; the
gateway logs each model call of the run."""

from __future__ import annotations

import asyncio
import uuid

import openai
import pytest
from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunConfig,
    Runner,
    function_tool,
)

from tests.fixtures.servers import GatewayServer, TeacherServer
from tests.gateway.test_proxy import rows

MODEL = "gpt-4o-gzip"  # a teacher that compresses its answers
TICKET = "Hi, I was charged twice for my invoice. This is urgent."


@function_tool
def lookup_invoice(query: str) -> str:
    """Look an invoice up by a free-text query."""
    return "INV-7 paid twice"


def run(base_url: str, api: str, session: str) -> tuple[str, list[str]]:
    async def go() -> tuple[str, list[str]]:
        client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key="sk-test",
            max_retries=0,
            default_headers={"x-distill-session": session},
        )
        model = (
            OpenAIResponsesModel(model=MODEL, openai_client=client)
            if api == "responses"
            else OpenAIChatCompletionsModel(model=MODEL, openai_client=client)
        )
        agent = Agent(
            name="triage", instructions="Triage the ticket.", tools=[lookup_invoice], model=model
        )
        result = await Runner.run(agent, TICKET, run_config=RunConfig(tracing_disabled=True))
        await client.close()
        kinds = [item.type for item in result.new_items]
        return str(result.final_output), kinds

    return asyncio.run(go())


@pytest.mark.parametrize("api", ["responses", "chat"])
def test_tool_using_agent_run(
    shared_gateway: GatewayServer, teacher_server: TeacherServer, api: str
) -> None:
    session = uuid.uuid4().hex
    via = run(shared_gateway.base_url, api, session)
    direct = run(teacher_server.base_url, api, session)
    assert via == direct
    assert via[0] == "Tool result: INV-7 paid twice"
    assert via[1] == ["tool_call_item", "tool_call_output_item", "message_output_item"]
    logged = rows(shared_gateway, f"session = '{session}'")
    assert [r["finish_reason"] for r in logged] == ["tool_calls", "stop"]
    assert {r["endpoint"] for r in logged} == {"responses" if api == "responses" else "chat"}
