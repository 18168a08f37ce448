"""SnapKV (Li et al., 2024): at prefill, keep only the KV-cache positions that the end of the prompt attends to.

The last `window` prompt tokens (the observation window, where the instruction sits) vote, per head, for the prefix
positions they attend to; the votes are pooled along the sequence so that neighbouring tokens are kept together; the
top positions plus the whole window stay in the cache, and decoding runs on that compressed cache.

Grouped-query attention: several query heads share one KV head. Their votes are averaged and one set of positions
is kept per KV head, so the compressed cache keeps its GQA shape ([batch, kv_heads, budget, head_dim]) and the
memory saving is real. (Keeping a set per query head would mean repeating the KV heads first, which multiplies the
cache by the group size before compressing it.)

The mechanism is one attention function, registered with transformers' attention registry as "snapkv": it runs
PyTorch's scaled-dot-product attention as usual and, inside `SnapKV.compressing(...)`, replaces each layer's freshly
filled cache entries by the kept positions. No transformers source is edited or patched.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AttentionInterface, PreTrainedModel
from transformers.cache_utils import Cache, CacheLayerMixin, DynamicSlidingWindowLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward

POOLINGS = ("max", "avg")
ATTENTION_NAME = "snapkv"


@dataclass(frozen=True)
class SnapKVConfig:
    """How much to keep. Give a `budget` in tokens per layer and KV head, or a `ratio` of the prompt."""

    budget: int | None = 1024
    ratio: float | None = None
    window: int = 32
    kernel: int = 7
    pooling: str = "max"

    def __post_init__(self) -> None:
        if (self.budget is None) == (self.ratio is None):
            raise ValueError("give exactly one of budget (tokens) and ratio (of the prompt)")
        if self.window < 1:
            raise ValueError(f"the observation window must hold at least one token, not {self.window}")
        if self.budget is not None and self.budget <= self.window:
            raise ValueError(f"the budget ({self.budget}) must exceed the observation window ({self.window})")
        if self.ratio is not None and not 0 < self.ratio < 1:
            raise ValueError(f"ratio must be between 0 and 1, not {self.ratio}")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"the pooling kernel must be odd and positive, not {self.kernel}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, not {self.pooling!r}")

    def budget_for(self, prompt_length: int) -> int:
        if self.budget is not None:
            return self.budget
        assert self.ratio is not None, "a config has a budget or a ratio (__post_init__)"
        return max(self.window + 1, math.ceil(self.ratio * prompt_length))


def snapkv_keep_indices(
    window_queries: torch.Tensor,
    keys: torch.Tensor,
    budget: int,
    kernel: int = 7,
    pooling: str = "max",
    scaling: float | None = None,
) -> torch.Tensor:
    """The prompt positions to keep in each KV head's cache, sorted: `[batch, kv_heads, budget]`.

    Args:
        window_queries: the observation window's queries after RoPE, `[batch, q_heads, window, head_dim]`: the
            queries of the last `window` prompt tokens.
        keys: the whole prompt's keys after RoPE, `[batch, kv_heads, seq, head_dim]`; `q_heads` is a multiple of
            `kv_heads` (grouped-query attention) and `seq` includes the window, which is its last `window` positions.
        budget: positions to keep per KV head, window included. A prompt no longer than the budget keeps
            everything (then the result is `[batch, kv_heads, seq]`).
        kernel: width of the 1-D pooling of the votes along the sequence (odd), so neighbours are kept together.
        pooling: "max" or "avg".
        scaling: the attention's softmax scale; default 1/sqrt(head_dim).

    Each window query's softmax attention (in fp32, causal inside the window) over all prompt keys is summed over the
    window per query head; the votes of the query heads sharing a KV head are averaged; the pooled votes choose the
    top `budget - window` prefix positions, and the window's own positions are always kept.
    """
    batch, q_heads, window, head_dim = window_queries.shape
    _, kv_heads, seq, _ = keys.shape
    if q_heads % kv_heads:
        raise ValueError(f"{q_heads} query heads cannot share {kv_heads} KV heads evenly")
    if window > seq:
        raise ValueError(f"the window ({window}) is longer than the prompt ({seq})")
    if seq <= budget:
        return torch.arange(seq, device=keys.device).expand(batch, kv_heads, seq)
    if budget <= window:
        raise ValueError(f"the budget ({budget}) must exceed the window ({window})")
    group = q_heads // kv_heads
    scale = scaling if scaling is not None else head_dim**-0.5

    queries = window_queries.float().view(batch, kv_heads, group, window, head_dim)
    logits = torch.einsum("bhgwd,bhsd->bhgws", queries, keys.float()) * scale
    # Window query i sits at position seq - window + i and sees no later window position.
    query_positions = torch.arange(seq - window, seq, device=keys.device)[:, None]
    future = torch.arange(seq, device=keys.device)[None, :] > query_positions
    logits = logits.masked_fill(future, float("-inf"))
    prefix = seq - window
    votes = logits.softmax(dim=-1)[..., :prefix].sum(dim=-2).mean(dim=2)  # [batch, kv_heads, prefix]

    pool = F.max_pool1d if pooling == "max" else F.avg_pool1d
    pooled = pool(votes.reshape(batch * kv_heads, 1, prefix), kernel, stride=1, padding=kernel // 2)
    pooled = pooled.view(batch, kv_heads, prefix)

    chosen = pooled.topk(budget - window, dim=-1).indices
    window_positions = torch.arange(prefix, seq, device=keys.device).expand(batch, kv_heads, window)
    return torch.cat([chosen, window_positions], dim=-1).sort(dim=-1).values


@dataclass
class CompressionStats:
    """What one prefill did to the cache."""

    prompt_tokens: int = 0
    kept_tokens: int = 0  # per layer and KV head
    compressed_layers: int = 0
    skipped_layers: list[int] = field(default_factory=list)  # sliding-window layers keep their own policy


@dataclass(frozen=True)
class ObservationWindow:
    """One layer's window queries (after RoPE) and softmax scale, recorded at prefill."""

    queries: torch.Tensor
    scaling: float | None


@dataclass
class _Prefill:
    cache: Cache
    window: int
    # Compress each layer as soon as it is filled (`config` given), or only record its window (`recorded`).
    config: SnapKVConfig | None = None
    stats: CompressionStats = field(default_factory=CompressionStats)
    recorded: dict[int, ObservationWindow] = field(default_factory=dict)


_ACTIVE: ContextVar[_Prefill | None] = ContextVar("snapkv_prefill", default=None)


def _snapkv_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attention as usual; at a prefill inside `SnapKV.compressing`, the layer's cache is compressed afterwards."""
    output = sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    prefill = _ACTIVE.get()
    # A prefill fills an empty cache: as many queries as keys. Later tokens (decoding, a follow-up question) are
    # appended as they are.
    if prefill is not None and query.shape[2] == key.shape[2]:
        layer_idx = module.layer_idx
        if not isinstance(layer_idx, int):
            raise TypeError(f"{type(module).__name__} does not know its layer (layer_idx): SnapKV cannot find it")
        observed = ObservationWindow(query[:, :, -prefill.window :].detach().clone(), kwargs.get("scaling"))
        if prefill.config is None:
            prefill.recorded[layer_idx] = observed
        else:
            compress_layer(prefill.cache, layer_idx, observed, prefill.config, prefill.stats)
    return output


def compress_layer(
    cache: Cache, layer_idx: int, observed: ObservationWindow, config: SnapKVConfig, stats: CompressionStats
) -> None:
    """Replace one layer's cached prompt by the positions its observation window votes for."""
    layer = cache.layers[layer_idx]
    if not isinstance(layer, CacheLayerMixin) or layer.keys is None or layer.values is None:
        raise TypeError(f"layer {layer_idx}'s cache ({type(layer).__name__}) holds no keys and values to compress")
    seq = layer.keys.shape[2]
    budget = config.budget_for(seq)
    stats.prompt_tokens = seq
    if isinstance(layer, DynamicSlidingWindowLayer):
        stats.skipped_layers.append(layer_idx)
        return
    if seq <= budget:
        stats.kept_tokens = seq
        return
    window = min(config.window, observed.queries.shape[2])
    keep = snapkv_keep_indices(
        observed.queries[:, :, -window:], layer.keys, budget, config.kernel, config.pooling, observed.scaling
    )
    index = keep.unsqueeze(-1).expand(-1, -1, -1, layer.keys.shape[-1])
    layer.keys = layer.keys.gather(2, index).contiguous()
    layer.values = layer.values.gather(2, index).contiguous()
    stats.kept_tokens = budget
    stats.compressed_layers += 1


AttentionInterface.register(ATTENTION_NAME, _snapkv_attention)


class SnapKV:
    """SnapKV for a transformers decoder model (Llama, Qwen2, Mistral families and others using the registry)."""

    def __init__(self, config: SnapKVConfig | None = None) -> None:
        self.config = config or SnapKVConfig()

    @staticmethod
    def attach(model: PreTrainedModel) -> None:
        """Route the model's attention through the SnapKV function; outside `compressing` it is plain SDPA."""
        if model.config._attn_implementation != ATTENTION_NAME:
            model.set_attn_implementation(ATTENTION_NAME)

    @contextmanager
    def compressing(self, cache: Cache) -> Iterator[CompressionStats]:
        """Inside this block, a prefill into `cache` is compressed layer by layer, as the paper does, so the full
        cache never exists for all layers at once; the stats fill in as the layers run."""
        prefill = _Prefill(cache, self.config.window, self.config)
        token = _ACTIVE.set(prefill)
        try:
            yield prefill.stats
        finally:
            _ACTIVE.reset(token)

    @staticmethod
    @contextmanager
    def observing(cache: Cache, window: int) -> Iterator[dict[int, ObservationWindow]]:
        """Inside this block, a prefill into `cache` keeps its full cache and records each layer's observation
        window, so that copies of one prefill can be compressed at several budgets (`compress`)."""
        prefill = _Prefill(cache, window)
        token = _ACTIVE.set(prefill)
        try:
            yield prefill.recorded
        finally:
            _ACTIVE.reset(token)

    def compress(self, cache: Cache, observed: dict[int, ObservationWindow]) -> CompressionStats:
        """Compress a full prefilled cache in place with the windows `observing` recorded."""
        stats = CompressionStats()
        for layer_idx, window in sorted(observed.items()):
            compress_layer(cache, layer_idx, window, self.config, stats)
        return stats
