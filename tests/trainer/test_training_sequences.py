"""Training sequences are built as inference renders the prompt, over many template styles."""

from __future__ import annotations

import pytest

from tests.trainer.chat_templates import STYLES, TemplateStyle, tokenizer_for
from trainer.training.data import IGNORE_INDEX, ChatExample, TrainingInputError, encode


def _conv(*turns: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": r, "content": c} for r, c in turns]


CONVERSATIONS = {
    "single": _conv(("user", "my account is locked"), ("assistant", "account")),
    "system": _conv(
        ("system", "Classify the ticket."), ("user", "refund please"), ("assistant", "billing")
    ),
    "multi-turn": _conv(
        ("user", "hi"),
        ("assistant", "technical"),
        ("user", "my shipping is late"),
        ("assistant", "shipping"),
    ),
    "json": _conv(("user", "extract"), ("assistant", '{"email": "a@example.com", "plan": "pro"}')),
}


def _prompt_ids(tok: object, messages: list[dict[str, str]]) -> list[int]:
    out = tok.apply_chat_template(  # type: ignore[attr-defined]
        messages, add_generation_prompt=True, tokenize=True, return_dict=True
    )
    return list(out["input_ids"])


@pytest.mark.parametrize("conversation", list(CONVERSATIONS))
@pytest.mark.parametrize("style_name", list(STYLES))
def test_training_prefix_is_the_inference_prompt_and_every_answer_token_a_target(
    style_name: str, conversation: str
) -> None:
    style: TemplateStyle = STYLES[style_name]
    tok = tokenizer_for(style)
    messages = CONVERSATIONS[conversation]
    answer = messages[-1]["content"]
    enc = encode(tok, ChatExample(messages))

    # The prefix is token for token what the served model is given.
    prompt = _prompt_ids(tok, messages[:-1])
    n = len(prompt)
    assert enc.input_ids[:n] == prompt
    assert enc.labels[:n] == [IGNORE_INDEX] * n

    # Every answer token is a target, the first included, and nothing else is.
    assert enc.labels[n:] == enc.input_ids[n:]
    assert len(enc.input_ids) > n + 1

    # The answer is tokenized on its own (with the space Llama-2's template writes before it)
    # and closed by the turn's end token, where generation stops.
    end_id = tok.convert_tokens_to_ids(style.end_of_turn or style.eos)
    assert enc.input_ids[-1] == end_id
    on_its_own = [tok(t, add_special_tokens=False)["input_ids"] for t in (answer, " " + answer)]
    body = next((ids for ids in on_its_own if enc.input_ids[n : n + len(ids)] == ids), None)
    assert body is not None, tok.decode(enc.input_ids[n:])
    assert tok.decode(enc.input_ids[n + len(body) : -1]).strip() == ""  # whitespace at most


@pytest.mark.parametrize("style_name", ["role-colon", "mistral"])
def test_first_answer_token_is_learned_where_bpe_would_merge_it_with_the_template(
    style_name: str,
) -> None:
    """Issue 18: tokenizing the whole text merges the prompt's trailing space with the answer."""
    tok = tokenizer_for(STYLES[style_name])
    messages = CONVERSATIONS["single"]
    whole = tok.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    merged = tok.convert_tokens_to_ids("Ġaccount")
    assert merged in whole  # the trap is real for this tokenizer
    enc = encode(tok, ChatExample(messages))
    targets = [t for t in enc.labels if t != IGNORE_INDEX]
    assert targets[0] == tok("account", add_special_tokens=False)["input_ids"][0] != merged


def test_other_answers_in_a_conversation_are_context_only() -> None:
    tok = tokenizer_for(STYLES["chatml"])
    enc = encode(tok, ChatExample(CONVERSATIONS["multi-turn"]))
    targets = [t for t in enc.labels if t != IGNORE_INDEX]
    assert tok.decode(targets) == "shipping<|im_end|>"


NO_ASSISTANT = (
    "{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ 'Q: ' + message['content'] + '\n' }}{% endif %}{% endfor %}"
)
RAISES_ON_ASSISTANT = (
    "{% for message in messages %}{% if message['role'] == 'assistant' %}"
    "{{ raise_exception('only user turns') }}{% endif %}"
    "{{ message['content'] }}{% endfor %}"
)
PROMPT_NOT_A_PREFIX = (
    "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Answer:' }}{% endif %}"
)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (NO_ASSISTANT, "does not render the assistant's answer"),
        (RAISES_ON_ASSISTANT, "only user turns"),
        (PROMPT_NOT_A_PREFIX, "generation prompt"),
    ],
    ids=["drops-assistant", "raises-on-assistant", "prompt-not-a-prefix"],
)
def test_templates_that_cannot_train_are_refused_with_the_reason(
    template: str, message: str
) -> None:
    tok = tokenizer_for(STYLES["chatml"])
    tok.chat_template = template
    with pytest.raises(TrainingInputError, match=message):
        encode(tok, ChatExample(CONVERSATIONS["single"]))
