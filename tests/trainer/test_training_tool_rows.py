"""Agent rows (tools, tool calls, tool results) train and evaluate as inference renders them.

Units: the text convention for templates without tools (pure), the rows `distill train` takes
and refuses, and the training sequence of each agent conversation for a ChatML-with-tools
template (Qwen2.5's), for templates without tool support, and for every template style of
tests/trainer/chat_templates.py. End to end: agent traffic logged by a real gateway builds a
dataset that trains the tiny model and evaluates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.fixtures.servers import GatewayFactory
from tests.trainer.chat_templates import CHATML, CHATML_TOOLS, STYLES, TINY, tokenizer_for
from tests.trainer.test_dataset_tools import TOOL_SPEC, log_agent_runs
from trainer.dataset.build import build_dataset
from trainer.dataset.config import BuildConfig
from trainer.evaluation.runner import EvalConfig, run_eval
from trainer.training import TrainConfig, train_adapter
from trainer.training import tool_calls as tc
from trainer.training.data import IGNORE_INDEX, ChatExample, TrainingInputError, encode
from trainer.training.data import parse_example as parse_row
from trainer.training.tool_turns import prompt_text, takes_tools

TOOLS: list[Any] = [{"type": "function", "function": TOOL_SPEC}]
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "lookup_invoice", "arguments": '{"query": "INV-7"}'},
}
CALL_2 = {
    "id": "call_2",
    "type": "function",
    "function": {"name": "lookup_invoice", "arguments": '{"query": "INV-8"}'},
}
USER = {"role": "user", "content": "Where is my invoice?"}
ASKED = {"role": "assistant", "content": None, "tool_calls": [CALL]}
RESULT = {"role": "tool", "tool_call_id": "call_1", "content": "INV-7 paid"}
ANSWER = {"role": "assistant", "content": "It is paid."}
HERMES_CALL = (
    '<tool_call>\n{"name": "lookup_invoice", "arguments": {"query": "INV-7"}}\n</tool_call>'
)

# (conversation as `dataset build` writes it, the answer as the student writes it)
CONVERSATIONS: dict[str, tuple[list[dict[str, Any]], str]] = {
    "call": ([USER, ASKED], HERMES_CALL),
    "after-result": ([USER, ASKED, RESULT, ANSWER], "It is paid."),
    "parallel": (
        [
            {"role": "developer", "content": "Be brief."},
            USER,
            {"role": "assistant", "content": None, "tool_calls": [CALL, CALL_2]},
            RESULT,
            {"role": "tool", "tool_call_id": "call_2", "content": "INV-8 due"},
            {"role": "assistant", "content": "One paid, one due."},
        ],
        "One paid, one due.",
    ),
    "text-and-call": (
        [USER, {"role": "assistant", "content": "Looking.", "tool_calls": [CALL]}],
        "Looking.\n" + HERMES_CALL,
    ),
}  # fmt: skip


# --- the text convention (pure) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "calls"),
    [
        (HERMES_CALL, [{"name": "lookup_invoice", "arguments": {"query": "INV-7"}}]),
        (
            "I will look.\n<tool_call>\n{\"name\": \"a\", \"arguments\": \"{}\"}\n</tool_call>\n"
            "<tool_call>{\"name\": \"b\", \"arguments\": {\"x\": 1}}</tool_call>",
            [{"name": "a", "arguments": {}}, {"name": "b", "arguments": {"x": 1}}],
        ),
        ('{"name": "a", "parameters": {"x": 1}}', [{"name": "a", "arguments": {"x": 1}}]),
        ("It is paid.", None),
        ("<tool_call>\n{not json}\n</tool_call>", None),
        ('{"title": "no name"}', None),
    ],
)  # fmt: skip
def test_generated_tool_calls_parse_back(text: str, calls: list[dict[str, Any]] | None) -> None:
    assert tc.parse_calls(text) == calls


def test_calls_compare_by_name_and_arguments_not_by_spelling() -> None:
    spelled = [{"function": {"name": "f", "arguments": '{"b": 2,  "a": 1}'}}]
    assert tc.calls_key(spelled) == tc.generated_key(
        '<tool_call>{"name": "f", "arguments": {"a": 1, "b": 2}}</tool_call>'
    )
    assert tc.generated_key(tc.calls_text([CALL, CALL_2])) == tc.calls_key([CALL, CALL_2])
    assert tc.calls_key([CALL]) != tc.calls_key([CALL_2])
    assert tc.generated_key("It is paid.") == "It is paid."  # fmt: skip


# --- rows `distill train` takes and refuses ----------------------------------------------------


def test_an_agent_row_parses_with_its_tools_and_developer_as_system() -> None:
    messages, _ = CONVERSATIONS["parallel"]
    example = parse_row(json.dumps({"messages": messages, "tools": TOOLS}), "row")
    assert example.tools == TOOLS
    assert example.messages[0] == {"role": "system", "content": "Be brief."}
    assert example.messages[2]["tool_calls"] == [CALL, CALL_2]
    assert example.messages[3] == RESULT


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"messages": [{**USER, "tool_calls": [CALL]}]}, "only an assistant"),
        ({"messages": [USER, {**ASKED, "tool_calls": []}]}, "non-empty"),
        ({"messages": [USER, {**ASKED, "tool_calls": [{"id": "x"}]}]}, '"function"'),
        ({"messages": [USER, {"role": "tool", "content": None}]}, "string content"),
        ({"messages": [USER, ASKED], "tools": {"f": 1}}, "tools must be a list"),
        ({"messages": [USER, {"role": "robot", "content": "x"}]}, "needs a role among"),
    ],
)  # fmt: skip
def test_bad_agent_rows_are_refused_saying_what_is_wrong(row: dict[str, Any], message: str) -> None:
    with pytest.raises(TrainingInputError, match=message):
        parse_row(json.dumps(row), "train.jsonl line 3")


# --- training sequences ----------------------------------------------------------------------


def _split(tok: Any, example: ChatExample) -> tuple[str, str, int]:
    enc = encode(tok, example)
    n = enc.labels.count(IGNORE_INDEX)
    assert enc.labels[:n] == [IGNORE_INDEX] * n
    assert enc.labels[n:] == enc.input_ids[n:]  # every answer token a target
    return tok.decode(enc.input_ids[:n]), tok.decode(enc.input_ids[n:]), n


@pytest.mark.parametrize("conversation", list(CONVERSATIONS))
def test_chatml_with_tools_renders_the_rows_natively(conversation: str) -> None:
    tok = tokenizer_for(CHATML_TOOLS)
    assert takes_tools(tok)
    messages, answer = CONVERSATIONS[conversation]
    prompt, target, n = _split(tok, ChatExample(_rows(messages), tools=TOOLS))

    # The prefix is what vLLM renders: the template gets the tools, the calls' arguments as
    # objects (vLLM parses the JSON strings before rendering), the tool turns as they are.
    context = [_vllm_turn(m) for m in _rows(messages)[:-1]]
    served: Any = tok.apply_chat_template(
        context, tools=TOOLS, add_generation_prompt=True, tokenize=True, return_dict=True
    )
    prefix = encode(tok, ChatExample(_rows(messages), tools=TOOLS)).input_ids[:n]
    assert prefix == list(served["input_ids"])
    assert '"description": "Look an invoice up"' in prompt
    assert tc.TOOLS_INTRO not in prompt  # the template's own tool block, not the convention's
    if RESULT in messages:
        assert "<|im_start|>user\n<tool_response>\nINV-7 paid\n</tool_response>" in prompt
    assert target == answer + "<|im_end|>"  # the template's tool-call format, then end of turn


@pytest.mark.parametrize("conversation", list(CONVERSATIONS))
@pytest.mark.parametrize("style", [CHATML, TINY], ids=["chatml", "tiny"])
def test_a_template_without_tools_gets_them_as_text(style: Any, conversation: str) -> None:
    tok = tokenizer_for(style)
    assert not takes_tools(tok)
    messages, answer = CONVERSATIONS[conversation]
    prompt, target, _ = _split(tok, ChatExample(_rows(messages), tools=TOOLS))

    # The schemas are in the system turn, in the convention's words.
    schema = json.dumps(TOOLS[0])
    system = prompt.split(tc.TOOLS_INTRO)[0].removesuffix("Be brief.\n\n")
    assert system.endswith("system|>\n") or system.endswith("system\n")
    assert f"<tools>\n{schema}\n</tools>" in prompt
    if conversation == "parallel":
        assert "Be brief.\n\n" + tc.TOOLS_INTRO in prompt  # appended to the app's system turn
        results = "<tool_response>\nINV-7 paid\n</tool_response>\n<tool_response>\nINV-8 due"
        assert results in prompt  # both results in one user turn
    if conversation in ("after-result", "parallel"):
        assert HERMES_CALL in prompt  # the earlier call, as the student writes calls
    assert target == answer + style.eos
    if tc.parse_calls(answer):
        assert tc.generated_key(target) == tc.calls_key(_rows(messages)[-1]["tool_calls"])


@pytest.mark.parametrize("conversation", list(CONVERSATIONS))
@pytest.mark.parametrize("style_name", [*STYLES, "chatml-tools"])
def test_the_training_prefix_is_the_prompt_eval_and_the_check_send(
    style_name: str, conversation: str
) -> None:
    tok = tokenizer_for(STYLES.get(style_name, CHATML_TOOLS))
    rows = _rows(CONVERSATIONS[conversation][0])
    enc = encode(tok, ChatExample(rows, tools=TOOLS))
    prompt = tok(prompt_text(tok, rows[:-1], TOOLS), add_special_tokens=False)["input_ids"]
    assert enc.input_ids[: len(prompt)] == prompt
    assert enc.labels.count(IGNORE_INDEX) == len(prompt)


def _rows(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The turns as `distill train` reads them from train.jsonl."""
    return parse_row(json.dumps({"messages": messages}), "row").messages


def _vllm_turn(turn: dict[str, Any]) -> dict[str, Any]:
    calls = turn.get("tool_calls")
    if not calls:
        return turn
    parsed = [
        {**c, "function": {**c["function"], "arguments": json.loads(c["function"]["arguments"])}}
        for c in calls
    ]
    return {**turn, "tool_calls": parsed}


# --- end to end ------------------------------------------------------------------------------


def test_logged_agent_traffic_trains_the_tiny_model_and_evaluates(
    make_gateway: GatewayFactory, tiny_model_dir: Path, tmp_path: Path
) -> None:
    server = make_gateway()
    client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
    log_agent_runs(client, 12, seed=3)
    server.stop()
    config = BuildConfig(
        route="support-triage",
        min_rows=4,
        eval_fraction=0.25,
        disabled=frozenset({"near_duplicate"}),
    )
    dataset, card = build_dataset(server.store_path, config, tmp_path / "ds", warn=lambda _: None)
    assert card["tool_rows"] == 24

    out = tmp_path / "adapter"
    train = TrainConfig(
        max_steps=3, save_steps=0, logging_steps=1, min_steps=0, min_examples=8, batch_size=4,
        max_seq_len=512, check_examples=4,
    )  # fmt: skip
    result = train_adapter(dataset, str(tiny_model_dir), out, train, progress=False)
    assert result.steps == 3
    assert result.metrics["skipped_too_long"] == result.metrics["skipped_no_target"] == 0
    assert any("no tool format" in note for note in result.notes)  # the tiny template has none
    lineage = json.loads((out / "distill.json").read_text())
    assert lineage["check"]["n"] == 4

    evaluated = run_eval(out, dataset, tmp_path / "eval", EvalConfig(max_tokens=8, batch_size=8))
    records = [json.loads(line) for line in (evaluated.out_dir / "predictions.jsonl").open()]
    calls = [r for r in records if r["target"].startswith('{"tool_calls"')]
    assert calls and len(calls) < len(records)  # both kinds of answer in the eval split
    assert all(json.loads(r["target"])["tool_calls"][0]["name"] == "lookup_invoice" for r in calls)
