"""SnapKV on the real default model (SmolLM2-135M-Instruct from its local GGUF): cache sizes, decoding, equality."""

import pytest
import torch

from llm_reports.llm import OptionList, cache_megabytes
from llm_reports.snapkv import SnapKV, SnapKVConfig

HISTORY = "\n".join(
    f"Nov {1 + hour // 24} {hour % 24:02d}:00 | East gate | mean {40 + hour * 37 % 90} | peak {70 + hour * 53 % 120}"
    for hour in range(40)
)
MESSAGES = [{"role": "user", "content": f"{HISTORY}\nWhat was the peak at East gate on Nov 2 at 03:00?"}]


@pytest.fixture(scope="module")
def prompt(llm) -> torch.Tensor:
    return llm.encode_chat(MESSAGES)


def test_after_prefill_the_cache_holds_the_budget_and_grows_by_one_per_token(llm, prompt):
    budget = 128
    assert prompt.shape[1] > 4 * budget
    prefilled = llm.prefill(prompt, SnapKV(SnapKVConfig(budget=budget, window=16)))
    heads, head_dim = llm.model.config.num_key_value_heads, llm.model.config.head_dim
    assert len(prefilled.cache.layers) == llm.model.config.num_hidden_layers
    for layer in prefilled.cache.layers:
        assert layer.keys.shape == layer.values.shape == (1, heads, budget, head_dim)
    assert (prefilled.stats.prompt_tokens, prefilled.stats.kept_tokens) == (prompt.shape[1], budget)
    assert prefilled.positions == prompt.shape[1]

    tokens, _ = llm.decode(prefilled, max_new_tokens=5)
    assert tokens
    for layer in prefilled.cache.layers:
        assert layer.keys.shape[2] == budget + len(tokens)
    assert prefilled.positions == prompt.shape[1] + len(tokens), "positions continue from the prompt's length"


def test_the_compressed_cache_is_smaller_by_the_budget_ratio(llm, prompt):
    full = llm.prefill(prompt)
    compressed = llm.prefill(prompt, SnapKV(SnapKVConfig(budget=128)))
    assert cache_megabytes(full.cache) / cache_megabytes(compressed.cache) == pytest.approx(prompt.shape[1] / 128)


def test_with_a_budget_as_long_as_the_prompt_the_text_is_the_full_cache_text(llm, prompt):
    full = llm.generate(MESSAGES, max_new_tokens=24)
    same = llm.generate(MESSAGES, max_new_tokens=24, snapkv=SnapKV(SnapKVConfig(budget=prompt.shape[1])))
    assert full.new_tokens > 0
    assert same.text == full.text


def test_greedy_decoding_without_penalty_matches_transformers_generate(llm, prompt):
    ours, _ = llm.decode(llm.prefill(prompt), max_new_tokens=16, repetition_penalty=1.0)
    reference = llm.model.generate(prompt, max_new_tokens=16, do_sample=False, eos_token_id=sorted(llm.stop_ids))
    assert ours == reference[0, prompt.shape[1] :].tolist()[: len(ours)]
    assert len(ours) > 0


def test_compressing_during_prefill_equals_compressing_a_recorded_prefill(llm, prompt):
    snapkv = SnapKV(SnapKVConfig(budget=96, window=16))
    during = llm.prefill(prompt, snapkv)
    recorded = llm.prefill_observed(prompt, window=16)
    stats = snapkv.compress(recorded.cache, recorded.observed)
    assert stats.kept_tokens == 96 and stats.compressed_layers == llm.model.config.num_hidden_layers
    for ours, theirs in zip(during.cache.layers, recorded.cache.layers, strict=True):
        torch.testing.assert_close(ours.keys, theirs.keys)
        torch.testing.assert_close(ours.values, theirs.values)


def test_a_follow_up_question_reuses_the_compressed_history(llm, prompt):
    history = llm.prefill(prompt, SnapKV(SnapKVConfig(budget=128)))
    later = [{"role": "assistant", "content": "The peak was 123."}, {"role": "user", "content": "And at 04:00?"}]
    question = llm.encode_continuation(MESSAGES, later)
    assert llm.tokenizer.decode(question[0]).count("And at 04:00?") == 1
    asked = llm.extend(history.copy(), question)
    assert asked.positions == prompt.shape[1] + question.shape[1]
    assert asked.cache.layers[0].keys.shape[2] == 128 + question.shape[1]
    assert history.cache.layers[0].keys.shape[2] == 128, "the kept history cache is untouched"
    answer = llm.finish(asked, max_new_tokens=12)
    assert answer.new_tokens > 0


@pytest.fixture(scope="module")
def fact_ids(llm) -> OptionList:
    return OptionList(llm.tokenizer, [f"F{number}" for number in range(1, 13)], min_chosen=2, max_chosen=3)


def test_an_option_list_allows_only_the_start_of_a_list_of_distinct_options(llm, fact_ids):
    def spelled(reply: str) -> set[str]:
        allowed, _ = fact_ids.allowed(reply)
        return {llm.tokenizer.decode([token]) for token in allowed}

    assert spelled("") == {"F"}
    assert spelled("F1") == {"0", "1", "2", ","}  # F10-F12, or F1 and the separator's first token
    assert spelled("F1,") == {" F"}
    assert spelled("F1, F") == {str(digit) for digit in range(2, 10)} | {"1"}  # F1 itself is taken; F10-F12 are not
    assert spelled("F2, F3, F1") == {"0", "1", "2"}  # three chosen: no separator, only the longer F10-F12
    assert spelled("F1, F2, F3") == set()
    assert spelled("F1 and F2") == set()


def test_an_option_list_ends_only_between_its_minimum_and_maximum(fact_ids):
    assert [fact_ids.allowed(reply)[1] for reply in ("", "F1", "F1, F2", "F1, F2, F3", "F1, F1", "F1, F")] == [
        False,
        False,
        True,
        True,
        False,
        False,
    ]
    assert fact_ids.chosen("F3, F12, F1") == ["F3", "F12", "F1"]


def test_decoding_under_an_option_list_writes_a_list_of_options(llm, prompt, fact_ids):
    tokens, _ = llm.decode(llm.prefill(prompt), max_new_tokens=24, constraint=fact_ids)
    reply = llm.tokenizer.decode(tokens)
    chosen = fact_ids.chosen(reply)
    assert reply == ", ".join(chosen) and 2 <= len(chosen) <= 3 and len(set(chosen)) == len(chosen)


def test_options_must_be_distinct_and_free_of_the_separator(llm):
    with pytest.raises(ValueError):
        OptionList(llm.tokenizer, ["F1", "F1"], 1, 2)
    with pytest.raises(ValueError):
        OptionList(llm.tokenizer, ["F1, F2"], 1, 2)
