"""Prompts for a chat model: the chat template as one-turn conversations, and the id that pads them.

A prompt is wrapped as a one-turn chat (optional system message, the user
message, the assistant header: ``add_generation_prompt=True``) when the
tokenizer has a chat template, or when the caller asks for it (``chat=True``);
otherwise it is used as is. Every package that feeds prompts to a chat model
(:mod:`probes.chat`, :mod:`audit.tuco.inputs`) reads the template through
here, so all of them see a prompt the same way; their error messages differ
only by a ``prefix`` (``"tuco: "``) and the ``remedy`` they suggest.

>>> uses_chat_template(tok)                                  # doctest: +SKIP
True
>>> chat_text(tok, "How do I bake bread?", "Be brief.")      # doctest: +SKIP
'<|im_start|>system\\nBe brief.<|im_end|>\\n<|im_start|>user\\nHow do I bake bread?<|im_end|>\\n<|im_start|>assistant\\n'
"""

from __future__ import annotations

from typing import Any

from editkit.errors import InputError

__all__ = ["chat_text", "pad_id_of", "uses_chat_template"]


def uses_chat_template(tok: Any, chat: bool | None = None, *, prefix: str = "",
                       remedy: str = "pass chat=False (--no-chat)") -> bool:
    """Whether prompts get the chat template: ``chat`` if given, else whether ``tok`` has one.

    Args:
        prefix: put before the error message (e.g. ``"tuco: "``).
        remedy: what the error message tells the user to do instead.

    Raises:
        InputError: ``chat=True`` and the tokenizer has no chat template.
    """
    has = bool(getattr(tok, "chat_template", None))
    if chat and not has:
        raise InputError(f"{prefix}the chat template was asked for but the tokenizer has none; {remedy}")
    return has if chat is None else chat


def chat_text(tok: Any, prompt: str, system_prompt: str | None = None, *, prefix: str = "") -> str:
    """The prompt as a templated one-turn chat (``[system,] user`` and the assistant header), as text.

    Args:
        prefix: put before the error message (e.g. ``"tuco: "``).

    Raises:
        InputError: the template rejects the conversation (e.g. no system role).
    """
    messages = [{"role": "user", "content": prompt}]
    if system_prompt:
        messages.insert(0, {"role": "system", "content": system_prompt})
    try:
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception as exc:  # jinja raises TemplateError (e.g. "System role not supported")
        raise InputError(f"{prefix}the tokenizer's chat template rejects the prompt ({str(exc).splitlines()[0]})") from None
    return str(text)


def pad_id_of(tok: Any) -> int:
    """The id padded positions of a prompt batch get (never attended to): pad, else EOS, else 0."""
    for attr in ("pad_token_id", "eos_token_id"):
        value = getattr(tok, attr, None)
        if isinstance(value, int):
            return value
    return 0
