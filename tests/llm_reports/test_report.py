"""Reports true by construction: the model chooses fact ids, code tells them; follow-up questions the same way."""

import io

import pytest

from llm_reports.events import find_events, must_tell
from llm_reports.facts import compute_facts
from llm_reports.report import (
    MAX_TOLD,
    MIN_TOLD,
    NO_FACT,
    ReportSettings,
    answer_follow_up,
    answering_events,
    compose,
    load_prompt_cache,
    refusal,
    save_prompt_cache,
    write_report,
)
from llm_reports.snapkv import SnapKVConfig
from tests.llm_reports.sample_history import build_history
from tests.llm_reports.stubbed_model import model_replies

SETTINGS = ReportSettings(snapkv=SnapKVConfig(budget=512), max_prompt_tokens=1800)
HISTORY = build_history()
EVENTS = find_events(HISTORY, compute_facts(HISTORY))
MUSTS = [event.id for event in must_tell(EVENTS)]


@pytest.fixture(scope="module")
def report(llm):
    return write_report(llm, HISTORY, SETTINGS)


@pytest.fixture(scope="module")
def kept(llm, report):
    buffer = io.BytesIO()
    save_prompt_cache(report, buffer)
    buffer.seek(0)
    return load_prompt_cache(llm, buffer)


def test_the_model_reads_a_compressed_history(report):
    assert report.prompt_tokens > 1000
    assert report.kept_tokens == 512
    assert report.kv_cache_mb > 0 and report.prefill_seconds > 0 and report.decode_tokens_per_second > 0


def test_the_model_answers_with_fact_ids_only_and_every_told_sentence_is_a_fact(report):
    ids = report.model_reply.split(", ")
    assert 4 <= len(ids) <= 8 and len(set(ids)) == len(ids)
    assert set(ids) <= {event.id for event in report.events}
    sentences = {event.id: event.sentence for event in report.events}
    assert all(told.text == sentences[told.fact_id] for told in report.sentences)
    assert report.text == " ".join(told.text for told in report.sentences)
    assert {told.fact_id for told in report.sentences if told.chosen_by_model} <= set(ids)


def test_every_must_tell_event_is_told_whatever_the_model_chose(report):
    assert set(MUSTS) <= {told.fact_id for told in report.sentences}
    assert MIN_TOLD <= len(report.sentences) <= MAX_TOLD


def test_without_a_model_the_ranking_chooses():
    written = write_report(None, HISTORY)
    assert [told.fact_id for told in written.sentences] == MUSTS
    assert not any(told.chosen_by_model for told in written.sentences)
    assert written.model == "" and written.prompt_cache is None


def test_compose_leads_with_the_musts_then_the_models_other_choices():
    told = compose(EVENTS, ["F9", "F4", "F2"])
    later_musts = [fact_id for fact_id in MUSTS if fact_id not in ("F4", "F2")]
    assert [sentence.fact_id for sentence in told] == ["F4", "F2", *later_musts, "F9"]
    assert [sentence.chosen_by_model for sentence in told[:3]] == [True, True, False]
    assert told[-1].chosen_by_model


def test_compose_fills_up_to_the_minimum_from_the_ranking():
    few = tuple(event for event in EVENTS if event.id not in MUSTS)
    assert [sentence.fact_id for sentence in compose(few, [])] == [event.id for event in few[:MIN_TOLD]]


def test_compose_drops_the_least_important_optional_facts_past_the_maximum():
    optional = [event.id for event in EVENTS if event.id not in MUSTS]
    chosen = optional[::-1][:8]  # the eight least important, least important first
    told = [sentence.fact_id for sentence in compose(EVENTS, chosen)]
    assert len(told) == MAX_TOLD and told[: len(MUSTS)] == MUSTS
    room = MAX_TOLD - len(MUSTS)
    kept = sorted(chosen, key=lambda fact_id: int(fact_id[1:]))[:room]  # ids follow importance
    assert told[len(MUSTS) :] == [fact_id for fact_id in chosen if fact_id in kept], "in the model's order"


def test_questions_are_answered_from_the_facts_about_what_they_ask():
    west_breaches = answering_events(EVENTS, "When was West gate over its threshold?")
    assert {event.kind for event in west_breaches} <= {"breach", "alert"}
    assert all(event.camera == "West gate" for event in west_breaches) and west_breaches
    assert answering_events(EVENTS, "What was the weather like?") == []
    assert answering_events(EVENTS, "Was any camera down?") == []  # no outage in this period
    assert {event.kind for event in answering_events(EVENTS, "Which camera was busiest?")} == {
        "busiest_hour",
        "ranking",
    }


BUSIEST_QUESTION = "Which camera was busiest?"


@pytest.mark.parametrize(
    ("named", "answered"),
    [((-1,), (-1,)), ((-1, 0), (-1, 0)), ((NO_FACT,), ()), ((0, NO_FACT, -1), (0,))],
    ids=["one-fact", "two-facts-in-the-models-order", "none", "facts-after-none-are-hedging"],
)
def test_a_follow_up_answer_is_the_sentences_of_the_facts_the_model_names(
    llm, report, kept, monkeypatch, named, answered
):
    """The model's reply is pinned (tests/llm_reports/stubbed_model.py): the answer must be exactly what it names."""
    assert kept.prefilled.positions == report.prompt_tokens
    assert kept.prefilled.cache.layers[0].keys.shape[2] == 512
    candidates = [event.id for event in answering_events(report.events, BUSIEST_QUESTION)]
    assert len(candidates) >= 2, "the sample history has several facts about the busiest camera"
    offered = model_replies(monkeypatch, ", ".join(NO_FACT if pick == NO_FACT else candidates[pick] for pick in named))

    answer = answer_follow_up(llm, kept, report.model_reply, report.events, BUSIEST_QUESTION)

    assert [constraint.options for constraint in offered] == [{NO_FACT, *candidates}]
    expected = tuple(candidates[pick] for pick in answered)
    assert answer.fact_ids == expected
    sentences = {event.id: event.sentence for event in report.events}
    assert answer.text == (" ".join(sentences[fact_id] for fact_id in expected) if expected else refusal(report.events))


def test_a_question_no_fact_answers_is_refused_with_what_the_facts_cover(llm, report, kept):
    answer = answer_follow_up(llm, kept, report.model_reply, report.events, "What was the weather like?")
    assert answer.fact_ids == ()
    assert answer.text.startswith(
        "The facts computed for this period do not answer that question; they cover: over threshold, unusual hour"
    )
