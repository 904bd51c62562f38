"""The tiny model's chat template, with `{% generation %}` markers for assistant-only loss masks."""

from __future__ import annotations

BOS = "<|begin|>"
END = "<|end|>"  # closes every turn; it is also the eos token, so generation stops on it
PAD = "<|pad|>"
ROLE_TOKENS: tuple[str, ...] = ("<|system|>", "<|user|>", "<|assistant|>")
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, END, *ROLE_TOKENS)

# One turn per message: "<|role|>\n{content}<|end|>\n". The assistant's content and its
# closing <|end|> sit inside {% generation %} so transformers can return the mask of tokens
# the model must learn to produce (content + eos), and nothing else. transformers renders with
# trim_blocks, which eats a newline written right after a block tag, hence the {{ '\\n' }}.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "<|assistant|>\n{% generation %}{{ message['content'] }}<|end|>{% endgeneration %}{{ '\\n' }}"
    "{% elif message['role'] in ['system', 'user'] %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n"
    "{% else %}"
    "{{ raise_exception('unsupported role: ' + message['role']) }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
