"""A chat template that renders agent turns in the text convention, for serving the student.

`distill train` renders agent rows for a template without a tool format as text
(`tool_turns.as_text`, the convention of `trainer.training.tool_calls`). vLLM serving such a
student ignores a request's `tools` (the template drops them) and fails on `tool` turns, so
its prompts would differ from the ones trained on. `hermes_chat_template(template)` returns a
wrapper template that does the same conversion inside Jinja (developer turns as system turns,
the tools block in the system turn, calls as `<tool_call>` blocks, results as one user turn of
`<tool_response>` blocks) and then runs the original template on the converted turns, without
tools. Served with `vllm ... --chat-template FILE --enable-auto-tool-choice
--tool-call-parser hermes`, the student sees the prompts it was trained on and its calls are
parsed back into `tool_calls`.

A conversation without tools, calls, results or developer turns renders exactly as the
original template renders it. A call's `arguments` render as the JSON of the object (vLLM
parses the request's JSON string to an object before rendering, as training does); a string
that reaches the template unparsed is written as it is.
"""

from __future__ import annotations

import json
from typing import Any

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.parser
from jinja2.sandbox import ImmutableSandboxedEnvironment
from transformers import PreTrainedTokenizerBase

from trainer.training import tool_calls as tc
from trainer.training import tool_turns

MARKER = "{#- distill: tool turns as text (trainer/training/tool_template.py) #}"
FILE_NAME = "distill_tool_chat_template.jinja"


class TemplateNotWrappable(ValueError):
    """The chat template cannot be wrapped so that it renders what training rendered."""


def _literal(text: str) -> str:
    """`text` as a Jinja string literal (JSON's escapes are Jinja's)."""
    return json.dumps(text)


# The conversion, kept in step with tool_turns.as_text and tool_calls (tools_text, calls_text,
# results_text); tests/trainer/test_tool_template.py checks both render the same prompt.
# transformers renders with trim_blocks and lstrip_blocks: every tag here trims its
# whitespace, and the last one ends in "%}" and a newline (eaten by trim_blocks) so the
# original template starts on a fresh line, as it does when it is rendered alone.
_PREAMBLE = (
    (
        MARKER
        + """
{%- set distill = namespace(agent=false, developer=false, turns=[], results='', tools='') -%}
{%- if tools -%}{%- set distill.agent = true -%}{%- endif -%}
{%- for m in messages -%}
  {%- if m.role == 'tool' or m.tool_calls -%}{%- set distill.agent = true -%}{%- endif -%}
  {%- if m.role == 'developer' -%}{%- set distill.developer = true -%}{%- endif -%}
{%- endfor -%}
{%- if distill.agent or distill.developer -%}
  {%- for m in messages -%}
    {%- set role = 'system' if m.role == 'developer' else m.role -%}
    {%- if distill.agent and m.role == 'tool' -%}
      {%- set distill.results = distill.results + ('\\n' if distill.results else '')
          + '<tool_response>\\n' + (m.content | string) + '\\n</tool_response>' -%}
      {%- if loop.last or messages[loop.index0 + 1].role != 'tool' -%}
        {%- set distill.turns = distill.turns + [{'role': 'user', 'content': distill.results}] -%}
        {%- set distill.results = '' -%}
      {%- endif -%}
    {%- elif distill.agent and m.tool_calls -%}
      {%- set text = namespace(value=m.content if m.content else '') -%}
      {%- for call in m.tool_calls -%}
        {%- set f = call.function if call.function is mapping else call -%}
        {%- set name = f.name if f.name is defined else none -%}
        {%- set args = f.arguments if f.arguments is defined else {} -%}
        {%- set args = args if args is string else (args | tojson) -%}
        {%- set text.value = text.value + ('\\n' if text.value else '')
            + '<tool_call>\\n{"name": ' + (name | tojson) + ', "arguments": ' + args
            + '}\\n</tool_call>' -%}
      {%- endfor -%}
      {%- set distill.turns = distill.turns + [{'role': role, 'content': text.value}] -%}
    {%- else -%}
      {%- set distill.turns = distill.turns + [{'role': role, 'content': m.content}] -%}
    {%- endif -%}
  {%- endfor -%}
  {%- if tools -%}
    {%- for t in tools -%}
      {%- set fn = t.function -%}
      {%- set line = namespace(value='{"type": "function", "function": {"name": '
          + ((fn.name if fn.name is defined else none) | tojson)) -%}
      {%- for key in ['description', 'parameters'] -%}
        {%- if fn[key] is defined and fn[key] is not none -%}
          {%- set line.value = line.value + ', "' + key + '": ' + (fn[key] | tojson) -%}
        {%- endif -%}
      {%- endfor -%}
      {%- set distill.tools = distill.tools + ('\\n' if not loop.first else '')
          + line.value + '}}' -%}
    {%- endfor -%}
    {%- set block = TOOLS_INTRO + '<tools>\\n' + distill.tools + '\\n</tools>' + TOOLS_OUTRO -%}
    {%- if distill.turns and distill.turns[0].role == 'system' -%}
      {%- set distill.turns = [{'role': 'system', 'content': distill.turns[0].content
          + '\\n\\n' + block}] + distill.turns[1:] -%}
    {%- else -%}
      {%- set distill.turns = [{'role': 'system', 'content': block}] + distill.turns -%}
    {%- endif -%}
  {%- endif -%}
  {%- set messages = distill.turns -%}
{%- endif -%}
{%- set tools = none %}
"""
    )
    .replace("TOOLS_INTRO", _literal(tc.TOOLS_INTRO))
    .replace("TOOLS_OUTRO", _literal(tc.TOOLS_OUTRO))
)


class _Generation(jinja2.ext.Extension):
    """transformers' `{% generation %}` block (assistant-token masks), parsed as its body."""

    tags = {"generation"}  # noqa: RUF012  (jinja2.ext.Extension declares it so)

    def parse(self, parser: jinja2.parser.Parser) -> list[jinja2.nodes.Node]:
        next(parser.stream)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


def _problem(template: str) -> str | None:
    env = ImmutableSandboxedEnvironment(extensions=[_Generation, jinja2.ext.loopcontrols])
    try:
        tree = env.parse(template)
    except jinja2.TemplateSyntaxError as exc:
        return f"it does not parse as Jinja ({exc})"
    if any(True for _ in tree.find_all((jinja2.nodes.Extends, jinja2.nodes.Include))):
        return "it extends or includes another template"
    if any(True for _ in tree.find_all((jinja2.nodes.Import, jinja2.nodes.FromImport))):
        return "it imports another template"
    return None


def hermes_chat_template(template: Any) -> str:
    """A chat template that renders agent conversations as `tool_turns.as_text` converts them
    for `template` (one without a tool format) and everything else exactly as `template` does.

    Raises TemplateNotWrappable for a template it cannot wrap faithfully.
    """
    if not isinstance(template, str) or not template:
        raise TemplateNotWrappable(
            "the chat template is not one Jinja string (named templates, or none): write "
            "one that renders tools in the Hermes convention and pass it to vLLM with "
            "--chat-template"
        )
    if template.startswith(MARKER):
        return template
    problem = _problem(template)
    if problem:
        raise TemplateNotWrappable(
            f"cannot wrap this chat template to render tool turns as text: {problem}; "
            "pass vLLM a --chat-template that does (docs/training-recipe.md)"
        )
    return _PREAMBLE + template


def serving_template(tokenizer: PreTrainedTokenizerBase) -> str | None:
    """The chat template to serve this student with, for agent traffic: None when its own
    renders tools (serve it with the --tool-call-parser of its family), else the wrapper."""
    if tool_turns.takes_tools(tokenizer):
        return None
    return hermes_chat_template(tokenizer.chat_template)
