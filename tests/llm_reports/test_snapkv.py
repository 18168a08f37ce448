"""SnapKV's selection on hand-built queries and keys, against the paper's algorithm written out step by step."""

import pytest
import torch
import torch.nn.functional as F

from llm_reports.snapkv import SnapKVConfig, snapkv_keep_indices

HEAD_DIM = 8


def attending(seq: int, q_heads: int, kv_heads: int, window: int, hot: dict[int, list[int]], strength: float = 8.0):
    """Window queries and keys where query head h attends strongly to the positions hot[h] (and weakly elsewhere)."""
    generator = torch.Generator().manual_seed(0)
    keys = 0.01 * torch.randn(1, kv_heads, seq, HEAD_DIM, generator=generator)
    queries = torch.zeros(1, q_heads, window, HEAD_DIM)
    group = q_heads // kv_heads
    for head, positions in hot.items():
        direction = torch.zeros(HEAD_DIM)
        direction[head % HEAD_DIM] = 1.0
        queries[0, head, :, :] = direction * strength
        for position in positions:
            keys[0, head // group, position, :] += direction * strength
    return queries, keys


def kept(indices: torch.Tensor, kv_head: int = 0) -> set[int]:
    return set(indices[0, kv_head].tolist())


def test_the_most_attended_positions_and_the_window_are_kept_in_order():
    seq, window = 100, 4
    queries, keys = attending(seq, 1, 1, window, {0: [5, 40, 77]})
    indices = snapkv_keep_indices(queries, keys, budget=window + 3, kernel=1)
    assert indices.shape == (1, 1, 7)
    assert indices[0, 0].tolist() == [5, 40, 77, 96, 97, 98, 99]


def test_pooling_keeps_the_neighbours_of_a_hot_position():
    seq, window = 100, 4
    queries, keys = attending(seq, 1, 1, window, {0: [50]})
    with_pooling = snapkv_keep_indices(queries, keys, budget=window + 3, kernel=3, pooling="max")
    assert kept(with_pooling) == {49, 50, 51, 96, 97, 98, 99}
    averaged = snapkv_keep_indices(queries, keys, budget=window + 3, kernel=3, pooling="avg")
    assert kept(averaged) == {49, 50, 51, 96, 97, 98, 99}


def test_the_window_is_kept_even_when_nothing_attends_to_it():
    seq, window = 64, 8
    queries, keys = attending(seq, 2, 2, window, {0: [3], 1: [9]})
    indices = snapkv_keep_indices(queries, keys, budget=window + 1, kernel=1)
    for head in range(2):
        assert set(range(seq - window, seq)) <= kept(indices, head)


def test_grouped_query_attention_keeps_one_set_per_kv_head():
    """Query heads 0 and 1 share KV head 0 and look at position 10; heads 2 and 3 share KV head 1 and look at 20."""
    seq, window = 80, 4
    queries, keys = attending(seq, 4, 2, window, {0: [10], 1: [10], 2: [20], 3: [20]})
    indices = snapkv_keep_indices(queries, keys, budget=window + 1, kernel=1)
    assert indices.shape == (1, 2, window + 1)
    assert kept(indices, 0) == {10, *range(seq - window, seq)}
    assert kept(indices, 1) == {20, *range(seq - window, seq)}


def test_the_votes_of_a_group_are_pooled_so_both_heads_are_heard():
    """KV head 0 serves query heads looking at 10 and at 30: with room for two, it keeps both."""
    seq, window = 80, 4
    queries, keys = attending(seq, 2, 1, window, {0: [10], 1: [30]})
    indices = snapkv_keep_indices(queries, keys, budget=window + 2, kernel=1)
    assert kept(indices) == {10, 30, *range(seq - window, seq)}


def test_a_window_query_does_not_see_later_window_tokens():
    """Window query 0 would give all its attention to the last token if it could see it; masked, it votes for 5."""
    seq, window = 40, 2
    keys = torch.zeros(1, 1, seq, HEAD_DIM)
    queries = torch.zeros(1, 1, window, HEAD_DIM)
    queries[0, 0, 0, 0] = 4.0  # query at position 38 looks along dimension 0
    keys[0, 0, 5, 0] = 2.0  # a prefix key it likes
    keys[0, 0, seq - 1, 0] = 50.0  # the last token, in its future: must not take its attention
    queries[0, 0, 1, 1] = 4.0  # query at position 39 looks along dimension 1
    keys[0, 0, 12, 1] = 1.0  # a prefix key it likes less
    indices = snapkv_keep_indices(queries, keys, budget=window + 1, kernel=1)
    assert kept(indices) == {5, 38, 39}


def test_a_prompt_within_the_budget_keeps_everything():
    queries, keys = attending(20, 3, 1, 4, {0: [2]})
    assert snapkv_keep_indices(queries, keys, budget=32).tolist() == [[list(range(20))]]


def paper_snapkv(queries: torch.Tensor, keys: torch.Tensor, budget: int, kernel: int, pooling: str) -> list[list[int]]:
    """The paper's Listing 1, for multi-head attention (one query head per KV head), one head at a time."""
    window, seq = queries.shape[2], keys.shape[2]
    result = []
    for head in range(queries.shape[1]):
        weights = queries[0, head] @ keys[0, head].T / HEAD_DIM**0.5
        mask = torch.full((window, window), float("-inf")).triu(1)
        weights[:, -window:] += mask
        weights = weights.softmax(dim=-1, dtype=torch.float32)
        votes = weights[:, :-window].sum(dim=0)
        pool = F.max_pool1d if pooling == "max" else F.avg_pool1d
        clustered = pool(votes[None, None], kernel_size=kernel, padding=kernel // 2, stride=1)[0, 0]
        top = clustered.topk(budget - window).indices
        result.append(sorted([*top.tolist(), *range(seq - window, seq)]))
    return result


@pytest.mark.parametrize("pooling", ["max", "avg"])
@pytest.mark.parametrize("kernel", [1, 7])
def test_selection_equals_the_papers_algorithm_on_random_tensors(pooling, kernel):
    generator = torch.Generator().manual_seed(1)
    queries = torch.randn(1, 4, 16, HEAD_DIM, generator=generator)
    keys = torch.randn(1, 4, 300, HEAD_DIM, generator=generator)
    ours = snapkv_keep_indices(queries, keys, budget=64, kernel=kernel, pooling=pooling)
    assert ours[0].tolist() == paper_snapkv(queries, keys, 64, kernel, pooling)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="exactly one"):
        SnapKVConfig(budget=512, ratio=0.1)
    with pytest.raises(ValueError, match="window"):
        SnapKVConfig(budget=16, window=32)
    with pytest.raises(ValueError, match="odd"):
        SnapKVConfig(kernel=4)
    with pytest.raises(ValueError, match="pooling"):
        SnapKVConfig(pooling="median")
    assert SnapKVConfig(budget=None, ratio=0.25).budget_for(4000) == 1000
