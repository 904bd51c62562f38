"""Real chat-template styles on a small byte-level BPE tokenizer, built offline for tests."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from trainer.tiny import chat_template as tiny


@dataclass(frozen=True)
class TemplateStyle:
    """A chat template as a model family ships it, with the special tokens it relies on."""

    template: str
    eos: str
    bos: str | None = None
    end_of_turn: str | None = None  # the turn-closing token, when it is not eos


# ChatML as SmolLM2/Qwen write it.
CHATML = TemplateStyle(
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
    eos="<|im_end|>",
)

# Llama-2's original template: no generation prompt; the space before the answer is written
# by the assistant turn, so the prompt ends in "[/INST]".
LLAMA2 = TemplateStyle(
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<<SYS>>\n' + message['content'] + '\n<</SYS>>\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ '[INST] ' + message['content'].strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ ' ' + message['content'].strip() + ' ' + eos_token }}"
    "{% endif %}"
    "{% endfor %}",
    eos="</s>",
    bos="<s>",
)

# Mistral-style [INST] whose generation prompt ends in a space.
MISTRAL = TemplateStyle(
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST] ' }}"
    "{% elif message['role'] == 'system' %}{{ message['content'] + '\n\n' }}"
    "{% else %}{{ message['content'] + eos_token }}{% endif %}"
    "{% endfor %}",
    eos="</s>",
    bos="<s>",
)

# The template of issue 18: the generation prompt "<s>assistant: " ends in a space that BPE
# merges with the answer's first word when the whole conversation is tokenized at once.
ROLE_COLON = TemplateStyle(
    "{% for message in messages %}"
    "{{ '<s>' + message['role'] + ': ' + message['content'] + '</s>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<s>assistant: ' }}{% endif %}",
    eos="</s>",
)

LLAMA3 = TemplateStyle(
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    " + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}",
    eos="<|eot_id|>",
    bos="<|begin_of_text|>",
)

GEMMA = TemplateStyle(
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}",
    eos="<eos>",
    bos="<bos>",
    end_of_turn="<end_of_turn>",
)

# Phi-3 closes a conversation rendered without a generation prompt with eos after <|end|>.
PHI3 = TemplateStyle(
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + '\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}",
    eos="<|endoftext|>",
    end_of_turn="<|end|>",
)

TINY = TemplateStyle(tiny.CHAT_TEMPLATE, eos=tiny.END, bos=tiny.BOS)

# ChatML with tools as Qwen2.5 writes it: schemas in the system turn, each call a
# <tool_call> block of the assistant turn, consecutive tool results one user turn.
CHATML_TOOLS = TemplateStyle(
    "{%- if tools %}{{- '<|im_start|>system\n' }}"
    "{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}"
    "{%- else %}{{- 'You are a helpful assistant.' }}{%- endif %}"
    "{{- '\n\n# Tools\n\n<tools>' }}"
    "{%- for tool in tools %}{{- '\n' }}{{- tool | tojson }}{%- endfor %}"
    "{{- '\n</tools><|im_end|>\n' }}"
    "{%- elif messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'user' or (message.role == 'system' and not loop.first)"
    " or (message.role == 'assistant' and not message.tool_calls) %}"
    "{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}"
    "{%- elif message.role == 'assistant' %}{{- '<|im_start|>' + message.role }}"
    "{%- if message.content %}{{- '\n' + message.content }}{%- endif %}"
    "{%- for tool_call in message.tool_calls %}"
    "{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}"
    '{{- \'\n<tool_call>\n{"name": "\' + tool_call.name + \'", "arguments": \' }}'
    "{{- tool_call.arguments | tojson }}{{- '}\n</tool_call>' }}"
    "{%- endfor %}{{- '<|im_end|>\n' }}"
    "{%- elif message.role == 'tool' %}"
    "{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}"
    "{{- '<|im_start|>user' }}{%- endif %}"
    "{{- '\n<tool_response>\n' + message.content + '\n</tool_response>' }}"
    "{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}"
    "{{- '<|im_end|>\n' }}{%- endif %}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}",
    eos="<|im_end|>",
)

STYLES: dict[str, TemplateStyle] = {
    "chatml": CHATML,
    "llama2": LLAMA2,
    "mistral": MISTRAL,
    "role-colon": ROLE_COLON,
    "llama3": LLAMA3,
    "gemma": GEMMA,
    "phi3": PHI3,
    "tiny": TINY,
}

SPECIALS = sorted(
    {
        *tiny.SPECIAL_TOKENS,
        "<|im_start|>",
        "<|im_end|>",
        "<s>",
        "</s>",
        "<|begin_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
        "<bos>",
        "<eos>",
        "<start_of_turn>",
        "<end_of_turn>",
        "<|endoftext|>",
    }
)

# Answers and prompts the tokenizer sees often enough to merge whole words with their spaces.
WORDS = ("account", "billing", "technical", "refund", "shipping", "user", "assistant", "system")
CORPUS = [
    *(f"[INST] my {w} is broken [/INST] {w} </s>" for w in WORDS),
    *(f"assistant: {w} user: {w} system: {w}" for w in WORDS),
    '{"email": "a@example.com", "plan": "pro"}',
    "Classify the ticket.",
] * 40


@functools.cache
def _base_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        min_frequency=2,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    return tok


def tokenizer_for(style: TemplateStyle, *, pad: bool = True) -> PreTrainedTokenizerBase:
    """A fast tokenizer with `style`'s template and special tokens (no pad token if not `pad`)."""
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call, unused-ignore]
        tokenizer_object=Tokenizer.from_str(_base_tokenizer().to_str()),
        bos_token=style.bos,
        eos_token=style.eos,
        pad_token="<|pad|>" if pad else None,
        additional_special_tokens=[t for t in SPECIALS if t not in (style.bos, style.eos)],
    )
    fast.chat_template = style.template
    return fast
