"""A model whose reply the test chooses: LocalLLM's decoding is replaced, while the prompt, the prompt cache, the
decoding constraint and the reading of the reply stay real."""

import pytest

from llm_reports.llm import LocalLLM, OptionList


def model_replies(monkeypatch: pytest.MonkeyPatch, reply: str) -> list[OptionList | None]:
    """From here on in the test, every decoding answers `reply` (its tokens, as the model's tokenizer spells them).
    The list returned receives each decoding's constraint, so the test can check what the model was offered; a reply
    the constraint could not have produced fails the test."""
    constraints: list[OptionList | None] = []

    def decode(self: LocalLLM, prefilled, max_new_tokens: int, *args, constraint: OptionList | None = None, **kwargs):
        constraints.append(constraint)
        if constraint is not None:
            assert constraint.allowed(reply)[1], f"{reply!r} is no reply the constraint allows"
        return self.tokenizer(reply, add_special_tokens=False)["input_ids"], 0.0

    monkeypatch.setattr(LocalLLM, "decode", decode)
    return constraints
