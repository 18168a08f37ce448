"""A real report with the default model: facts in code, a verified narrative, and follow-up questions."""

import io

import pytest

from llm_reports.facts import compute_facts
from llm_reports.report import ReportSettings, answer_follow_up, load_prompt_cache, save_prompt_cache, write_report
from llm_reports.snapkv import SnapKVConfig
from llm_reports.verify import sentence_problems, split_sentences, verify
from tests.llm_reports.sample_history import build_history

SETTINGS = ReportSettings(snapkv=SnapKVConfig(budget=512), max_new_tokens=200, max_prompt_tokens=1800)


@pytest.fixture(scope="module")
def report(llm):
    return write_report(llm, build_history(), SETTINGS)


def test_the_report_is_written_from_a_compressed_history(report):
    assert report.prompt_tokens > 1000
    assert report.kept_tokens == 512
    assert report.kv_cache_mb > 0 and report.prefill_seconds > 0 and report.decode_tokens_per_second > 0
    assert report.text.strip()


def test_every_sentence_of_the_report_agrees_with_the_facts(report):
    outcomes = report.verification.sentences
    assert {outcome.action for outcome in outcomes} <= {"kept", "regenerated", "replaced", "dropped"}
    for sentence in split_sentences(report.text):
        assert sentence_problems(sentence, report.facts) == [], sentence
    assert report.verification.replaced == sum(outcome.action == "replaced" for outcome in outcomes)


def test_a_planted_wrong_number_never_reaches_the_reader(llm, report):
    planted = f"{report.text} East entrance peaked at 1234 people at 14:00."
    checked = verify(
        planted, report.facts, regenerate=lambda prompt: llm.generate([{"role": "user", "content": prompt}], 80).text
    )
    assert "1234" not in checked.text
    assert checked.replaced + checked.regenerated >= 1
    for sentence in split_sentences(checked.text):
        assert sentence_problems(sentence, report.facts) == [], sentence


def test_a_follow_up_question_continues_from_the_saved_history_cache(llm, report):
    buffer = io.BytesIO()
    save_prompt_cache(report, buffer)
    buffer.seek(0)
    kept = load_prompt_cache(llm, buffer)
    assert kept.prefilled.positions == report.prompt_tokens
    assert kept.prefilled.cache.layers[0].keys.shape[2] == 512
    facts = compute_facts(build_history())
    answer = answer_follow_up(llm, kept, report.text, facts, "Which camera was the busiest?")
    assert answer.text.strip()
    for sentence in split_sentences(answer.text):
        assert sentence_problems(sentence, facts) == [], sentence
