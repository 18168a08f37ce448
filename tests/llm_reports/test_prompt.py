"""Prompt: history, then facts, then the instruction last; the history alone gives way to the token budget."""

import pytest

from llm_reports.events import find_events
from llm_reports.facts import compute_facts
from llm_reports.prompt import DEFAULT_INSTRUCTION, EARLIER_HEADING, PromptBudgetError, build_messages, context_lines
from tests.llm_reports.sample_history import build_history, word_count

HISTORY = build_history()
FACTS = compute_facts(HISTORY)
EVENTS = find_events(HISTORY, FACTS)
LINES = context_lines(HISTORY, FACTS)


def prompt_words(messages):
    system, user = messages
    return word_count(system["content"] + "\n" + user["content"])


def kept_lines(messages):
    content = messages[1]["content"]
    return [line for line in LINES if line.text in content.splitlines()]


def test_messages_are_system_then_user_with_the_instruction_last():
    messages = build_messages(HISTORY, FACTS, EVENTS, word_count, 100_000)
    assert [message["role"] for message in messages] == ["system", "user"]
    assert messages[1]["content"].endswith(DEFAULT_INSTRUCTION)


def test_history_then_facts_then_instruction():
    content = build_messages(HISTORY, FACTS, EVENTS, word_count, 100_000)[1]["content"]
    last_history_line = content.index(LINES[-1].text)
    first_fact = content.index(f"F1: {EVENTS[0].sentence}")
    assert content.index(LINES[0].text) < last_history_line < first_fact < content.index(DEFAULT_INSTRUCTION)


def test_everything_fits_in_a_large_budget():
    messages = build_messages(HISTORY, FACTS, EVENTS, word_count, 100_000)
    assert kept_lines(messages) == LINES


def test_history_lines_in_local_time_with_zones_events_and_alerts():
    texts = [line.text for line in LINES]
    spike = "Sat 28 Nov 14:00 | East entrance | mean 175 peak 220 | Far side 150/160, Near side 25/30"
    assert f"{spike} | Far side over threshold 150 | above usual 54" in texts
    alert = "Sat 28 Nov 14:10 | East entrance Far side | ALERT 160 people, threshold 150, acknowledged"
    assert texts.index(alert) == texts.index("Sat 28 Nov 14:00 | Gate 2 | mean 20 peak 30") + 1
    assert "Sat 28 Nov 19:00 | West gate | mean 35 peak 140 | over threshold 100" in texts
    assert "Fri 27 Nov 19:00 | West gate | ALERT 120 people, threshold 100" in texts
    assert not any(text.startswith("Sat 28 Nov 03:00 | Gate 2") for text in texts)
    assert texts[0].startswith("Sun 25 Oct 00:00 | East entrance")
    assert texts[-1] == "Sat 28 Nov 23:00 | Gate 2 | mean 20 peak 30"


@pytest.mark.parametrize("budget", [900, 1500, 4000, 20_000])
def test_the_budget_is_respected_and_filled(budget):
    messages = build_messages(HISTORY, FACTS, EVENTS, word_count, budget)
    assert prompt_words(messages) <= budget
    kept = kept_lines(messages)
    if len(kept) < len(LINES):
        one_more = LINES[len(LINES) - len(kept) - 1]
        assert prompt_words(messages) + word_count(one_more.text) > budget


@pytest.mark.parametrize("budget", [900, 1500, 4000])
def test_the_oldest_history_goes_first_and_every_fact_stays(budget):
    messages = build_messages(HISTORY, FACTS, EVENTS, word_count, budget)
    kept = kept_lines(messages)
    assert 0 < len(kept) < len(LINES)
    assert kept == LINES[len(LINES) - len(kept) :], "a suffix: the newest lines"
    assert all(f"\n{event.id}: {event.sentence}\n" in messages[1]["content"] for event in EVENTS)
    assert messages[1]["content"].endswith(DEFAULT_INSTRUCTION)


def test_the_period_is_kept_before_earlier_context():
    """A budget that fits exactly the period's lines keeps all of them and nothing earlier."""
    everything = prompt_words(build_messages(HISTORY, FACTS, EVENTS, word_count, 100_000))
    earlier = [line for line in LINES if not line.in_period]
    budget = everything - sum(word_count(line.text) for line in earlier) - word_count(EARLIER_HEADING)
    assert kept_lines(build_messages(HISTORY, FACTS, EVENTS, word_count, budget)) == [
        line for line in LINES if line.in_period
    ]


def test_facts_that_cannot_fit_are_an_error_not_a_cut():
    with pytest.raises(PromptBudgetError):
        build_messages(HISTORY, FACTS, EVENTS, word_count, 100)
