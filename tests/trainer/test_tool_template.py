"""The serving chat template for a student without a tool format renders training's prompts.

`hermes_chat_template(template)` wraps a template that has no tool format; rendering an agent
conversation with it (as vLLM does: tools re-serialised, call arguments parsed to objects)
must give exactly the prompt `distill train` trained on (`tool_turns.prompt_text`, the Python
conversion), for every template style of tests/trainer/chat_templates.py and SmolLM2's; any
other conversation must render byte for byte as the original template renders it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.trainer.chat_templates import CHATML_TOOLS, STYLES, TemplateStyle, tokenizer_for
from tests.trainer.test_training_tool_rows import CALL, CONVERSATIONS, TOOLS, USER
from trainer.serving.vllm_process import TOOL_CALL_PARSER, tool_chat_template, vllm_command
from trainer.training import tool_calls as tc
from trainer.training.tool_template import (
    FILE_NAME,
    MARKER,
    TemplateNotWrappable,
    hermes_chat_template,
    serving_template,
)
from trainer.training.tool_turns import prompt_text, turn

# SmolLM2-135M-Instruct's own template (tokenizer of `distill model smollm2`), as it ships.
SMOLLM2 = TemplateStyle(
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}",
    eos="<|im_end|>",
)
WRAPPED = {**STYLES, "smollm2": SMOLLM2}

# The tools as vLLM hands them to the template (ChatCompletionToolsParam.model_dump()):
# description null when the request had none, unknown keys dropped, fields in model order.
TOOL_VARIANTS: dict[str, tuple[list[Any], list[Any]]] = {
    "plain": (TOOLS, TOOLS),
    "no-description": (
        [{"type": "function", "function": {"name": "ping", "parameters": {"type": "object"}}}],
        [
            {
                "type": "function",
                "function": {"name": "ping", "description": None, "parameters": {"type": "object"}},
            }
        ],
    ),
    "reordered-extra-unicode": (
        [
            {
                "function": {
                    "parameters": {"type": "object", "properties": {"ü": {"type": "string"}}},
                    "strict": True,
                    "description": "Rechnung für Kunden ✓",
                    "name": "rechnung",
                },
                "type": "function",
            }
        ],
        [
            {
                "type": "function",
                "function": {
                    "name": "rechnung",
                    "description": "Rechnung für Kunden ✓",
                    "parameters": {"type": "object", "properties": {"ü": {"type": "string"}}},
                    "strict": True,
                },
            }
        ],
    ),
}


def as_vllm_messages(messages: list[dict[str, Any]], *, parse: bool = True) -> list[Any]:
    """The turns as a request carries them, call arguments parsed to objects as vLLM does
    before rendering (`parse`), or left as the request's JSON strings."""
    out = copy.deepcopy(messages)
    for msg in out:
        for call in msg.get("tool_calls") or []:
            if parse and isinstance(call["function"]["arguments"], str):
                call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    return out


def training_prompt(style: TemplateStyle, messages: list[Any], tools: list[Any] | None) -> str:
    """The prompt `distill train` and `distill eval` render for these turns (rows as
    `dataset build` writes them, parsed as training parses them)."""
    return prompt_text(tokenizer_for(style), [turn(m) for m in messages], tools)


def served_prompt(style: TemplateStyle, messages: list[Any], tools: list[Any] | None) -> str:
    tok = tokenizer_for(style)
    text = tok.apply_chat_template(
        messages,
        tools=tools,
        chat_template=hermes_chat_template(style.template),
        add_generation_prompt=True,
        tokenize=False,
    )
    return str(text)


@pytest.mark.parametrize("parse", [True, False], ids=["arguments-object", "arguments-string"])
@pytest.mark.parametrize("conversation", sorted(CONVERSATIONS))
@pytest.mark.parametrize("style", sorted(WRAPPED))
def test_agent_prompt_is_the_training_prompt(style: str, conversation: str, parse: bool) -> None:
    messages = CONVERSATIONS[conversation][0][:-1]  # up to the answer the student writes
    expected = training_prompt(WRAPPED[style], messages, TOOLS)
    served = served_prompt(WRAPPED[style], as_vllm_messages(messages, parse=parse), TOOLS)
    assert served == expected
    assert "<tools>" in served and tc.TOOLS_INTRO in served


@pytest.mark.parametrize("variant", sorted(TOOL_VARIANTS))
@pytest.mark.parametrize("style", ["smollm2", "llama2", "tiny"])
def test_tools_render_as_trained_whatever_vllm_adds_or_drops(style: str, variant: str) -> None:
    logged, as_vllm_passes = TOOL_VARIANTS[variant]
    messages = [{"role": "system", "content": "Be brief."}, USER]
    expected = training_prompt(WRAPPED[style], messages, logged)
    assert served_prompt(WRAPPED[style], messages, as_vllm_passes) == expected
    schema = tc.tool_schema(logged[0])
    assert json.dumps(schema, ensure_ascii=False) in expected
    assert list(schema["function"]) == [
        k for k in ("name", "description", "parameters") if logged[0]["function"].get(k)
    ]


def test_tools_without_a_conversation_turn_for_them() -> None:
    """Tools alone (no calls yet, no system turn) make an agent prompt: a system turn is added."""
    expected = training_prompt(SMOLLM2, [USER], TOOLS)
    assert served_prompt(SMOLLM2, [USER], TOOLS) == expected
    assert expected.startswith("<|im_start|>system\n" + tc.TOOLS_INTRO)


PLAIN: dict[str, list[dict[str, Any]]] = {
    "user": [USER],
    "system-user": [{"role": "system", "content": "Be brief."}, USER],
    "answered": [USER, {"role": "assistant", "content": "It is paid."}, USER],
    "whitespace": [{"role": "user", "content": "\n  two lines \n\n"}],
}


@pytest.mark.parametrize("generation_prompt", [True, False])
@pytest.mark.parametrize("tools", [None, []], ids=["no-tools", "empty-tools"])
@pytest.mark.parametrize("conversation", sorted(PLAIN))
@pytest.mark.parametrize("style", sorted(WRAPPED))
def test_other_conversations_render_as_the_original_template(
    style: str, conversation: str, tools: list[Any] | None, generation_prompt: bool
) -> None:
    tok = tokenizer_for(WRAPPED[style])
    messages = PLAIN[conversation]
    kwargs: dict[str, Any] = {"add_generation_prompt": generation_prompt, "tokenize": False}
    original = tok.apply_chat_template(messages, **kwargs)
    wrapper = hermes_chat_template(tok.chat_template)
    assert tok.apply_chat_template(messages, tools=tools, chat_template=wrapper, **kwargs) == (
        original
    )


@pytest.mark.parametrize("style", sorted(WRAPPED))
def test_developer_turns_are_system_turns_as_in_training(style: str) -> None:
    messages = [{"role": "developer", "content": "Be brief."}, USER]
    system = [{"role": "system", "content": "Be brief."}, USER]
    assert served_prompt(WRAPPED[style], messages, None) == training_prompt(
        WRAPPED[style], messages, None
    )
    assert served_prompt(WRAPPED[style], messages, None) == served_prompt(
        WRAPPED[style], system, None
    )


def test_a_template_keeps_its_leading_whitespace_and_generation_blocks() -> None:
    """trim_blocks must not eat the original's first newline; {% generation %} still marks
    the assistant's tokens through the wrapper (the tiny template uses it)."""
    template = "\n" + STYLES["chatml"].template
    tok = tokenizer_for(STYLES["chatml"])
    kwargs: dict[str, Any] = {"add_generation_prompt": True, "tokenize": False}
    assert tok.apply_chat_template(
        [USER], chat_template=hermes_chat_template(template), **kwargs
    ) == tok.apply_chat_template([USER], chat_template=template, **kwargs)
    tiny = tokenizer_for(STYLES["tiny"])
    answered = [USER, {"role": "assistant", "content": "paid"}]
    marks = {}
    for name, chat_template in [
        ("original", tiny.chat_template),
        ("wrapped", hermes_chat_template(tiny.chat_template)),
    ]:
        out: Any = tiny.apply_chat_template(
            answered,
            chat_template=chat_template,
            return_dict=True,
            return_assistant_tokens_mask=True,
        )
        marks[name] = (out["input_ids"], out["assistant_masks"])
    assert marks["wrapped"] == marks["original"] and any(marks["original"][1])


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{% extends 'base.jinja' %}", "extends or includes"),
        ("{% include 'turns.jinja' %}{{ messages }}", "extends or includes"),
        ("{% import 'macros.jinja' as m %}{{ m.turns(messages) }}", "imports"),
        ("{% from 'macros.jinja' import turns %}{{ turns(messages) }}", "imports"),
        ("{% for m in messages %}{{ m.content }}", "does not parse"),
        ({"default": "{{ messages }}", "rag": "{{ documents }}"}, "not one Jinja string"),
        (None, "not one Jinja string"),
        ("", "not one Jinja string"),
    ],
)
def test_templates_it_cannot_wrap_faithfully_are_refused(template: Any, reason: str) -> None:
    with pytest.raises(TemplateNotWrappable, match=reason):
        hermes_chat_template(template)


def test_wrapping_twice_is_wrapping_once() -> None:
    wrapper = hermes_chat_template(SMOLLM2.template)
    assert wrapper.startswith(MARKER) and wrapper.endswith(SMOLLM2.template)
    assert hermes_chat_template(wrapper) == wrapper


def test_serving_template_only_for_templates_without_a_tool_format() -> None:
    assert serving_template(tokenizer_for(CHATML_TOOLS)) is None
    assert serving_template(tokenizer_for(SMOLLM2)) == hermes_chat_template(SMOLLM2.template)


def test_vllm_start_writes_the_wrapper_and_turns_the_hermes_parser_on(tmp_path: Path) -> None:
    without, native = tmp_path / "smollm2-like", tmp_path / "qwen-like"
    tokenizer_for(SMOLLM2).save_pretrained(without)
    tokenizer_for(CHATML_TOOLS).save_pretrained(native)
    path = tool_chat_template(without, tmp_path / "logs")
    assert path == tmp_path / "logs" / FILE_NAME
    assert path.read_text() == hermes_chat_template(SMOLLM2.template)
    assert tool_chat_template(native, tmp_path / "logs-native") is None
    assert tool_chat_template("HuggingFaceTB/SmolLM2-135M-Instruct", tmp_path / "hub") is None
    argv = vllm_command(without, port=8000, chat_template=path, tool_call_parser=TOOL_CALL_PARSER)
    assert argv[argv.index("--chat-template") + 1] == str(path)
    assert argv[argv.index("--tool-call-parser") + 1] == "hermes"
    assert "--enable-auto-tool-choice" in argv
    plain = vllm_command(without, port=8000)
    assert "--chat-template" not in plain and "--enable-auto-tool-choice" not in plain


def test_call_in_the_wrapper_is_what_the_hermes_parser_reads_back() -> None:
    """The student's trained answer (the calls as the wrapper renders them in history) parses
    back to the call it was (tool_calls.parse_calls follows vLLM's hermes parser)."""
    history = as_vllm_messages(CONVERSATIONS["after-result"][0][:-1])
    text = served_prompt(SMOLLM2, history, TOOLS)
    turn_text = text.split("<|im_start|>assistant\n")[1].split("<|im_end|>")[0]
    assert turn_text == tc.calls_text([CALL])
    assert tc.parse_calls(turn_text) == [
        {"name": "lookup_invoice", "arguments": {"query": "INV-7"}}
    ]


def test_cli_writes_the_template_for_a_student_without_a_tool_format(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from trainer.models.cli import model

    without, native = tmp_path / "smollm2-like", tmp_path / "qwen-like"
    tokenizer_for(SMOLLM2).save_pretrained(without)
    tokenizer_for(CHATML_TOOLS).save_pretrained(native)
    runner = CliRunner()
    printed = runner.invoke(model, ["tool-template", str(without)])
    assert printed.exit_code == 0, printed.output
    assert printed.stdout == hermes_chat_template(SMOLLM2.template)
    out = tmp_path / "tools.jinja"
    written = runner.invoke(model, ["tool-template", str(without), "--out", str(out)])
    assert written.exit_code == 0 and "--tool-call-parser hermes" in written.stderr
    assert out.read_text() == printed.stdout
    refused = runner.invoke(model, ["tool-template", str(native)])
    assert refused.exit_code == 1 and "renders tools itself" in refused.output
