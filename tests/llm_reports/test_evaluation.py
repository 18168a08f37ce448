"""The report benchmark: the independent checker on true and crafted untrue sentences, recall of planted events, and
one run with the real model."""

import json
from dataclasses import replace
from datetime import UTC

import pytest

from llm_reports.evaluation.check import Checker, names_event
from llm_reports.evaluation.run import format_eval, run_eval
from llm_reports.evaluation.scenarios import Scenario, build_scenarios, local_time
from llm_reports.events import Event, find_events
from llm_reports.facts import compute_facts
from llm_reports.history import AlertRecord
from llm_reports.report import write_report

SCENARIOS = build_scenarios()
EVENING, OUTAGES, QUIET_AND_BUSY, ORDINARY = SCENARIOS
EVENING_DAY = EVENING.planted[0].start.date()
# Alerts without hours over a threshold are told in sentences of their own: two for Main hall, one for Fish market.
MORE_ALERTS = Scenario(
    "evening crowd, more alerts",
    replace(
        EVENING.history,
        alerts=[
            *EVENING.history.alerts,
            AlertRecord("Main hall", None, local_time(EVENING_DAY, 8, 10).astimezone(UTC), 410, 400),
            AlertRecord("Main hall", None, local_time(EVENING_DAY, 8, 40).astimezone(UTC), 420, 400, True),
            AlertRecord("Fish market", None, local_time(EVENING_DAY, 11, 20).astimezone(UTC), 95, 90),
        ],
    ),
    EVENING.planted,
)
DEMO_INVENTION = (
    "The city's operators have been monitoring a significant period of 4 to 6 weeks since the last day, with an "
    "average increase in their cameras and sensors."
)


def events_of(scenario: Scenario) -> tuple[Event, ...]:
    return find_events(scenario.history, compute_facts(scenario.history))


def told(scenario: Scenario, kind: str, camera: str | None = None, zone: str | None = None) -> str:
    """The product's sentence of that kind about that camera or zone (a site's or a ranking's: camera None)."""
    (event,) = [e for e in events_of(scenario) if e.kind == kind and e.camera == camera and e.zone == zone]
    return event.sentence


def changed(sentence: str, old: str, new: str) -> str:
    assert old in sentence, f"{old!r} is not in {sentence!r}"
    return sentence.replace(old, new)


def is_true(scenario: Scenario, sentence: str) -> bool:
    return Checker(scenario.history).check(sentence).true


def refuted(scenario: Scenario, sentence: str) -> bool:
    """Read by the checker and contradicted by the counts: untrue for the right reason, not merely unreadable."""
    verdict = Checker(scenario.history).check(sentence)
    return not verdict.true and not verdict.unchecked


SPIKE = told(EVENING, "unusual_hour", "Fish market")
TICKET_HALL_LEVEL = told(EVENING, "level", "Main hall", "Ticket hall")
BREACH = told(EVENING, "breach", "Main hall", "Ticket hall")
ALERT = told(MORE_ALERTS, "alert", "Fish market")
ALERTS = told(MORE_ALERTS, "alert", "Main hall")
SILENT = told(OUTAGES, "outage", "Harbour steps")
REPORTED_DOWN = told(OUTAGES, "outage", "Taxi rank")
QUIET_DAY = told(QUIET_AND_BUSY, "unusual_day", "Fish market")
WEEK_SURGE = told(QUIET_AND_BUSY, "week_change", "Main hall")


def test_the_sentences_under_test_are_the_products_and_true():
    assert SPIKE == (
        "At 11:00 on Thu 15 Oct, Fish market averaged 88 people, 215% above its usual 28 for that hour and weekday."
    )
    assert SILENT == (
        "Harbour steps sent no counts for 3 hours on Tue 13 Oct, from 14:00 to 17:00, hours in which it usually counts."
    )
    assert BREACH == (
        "Main hall's Ticket hall zone was over its threshold of 120 people for 3 hours on Thu 15 Oct, from 17:00 to "
        "20:00, with a highest peak of 146 at 18:00; an alert was raised at 17:25, acknowledged."
    )
    assert ALERTS == (
        "2 alerts were raised for Main hall on Thu 15 Oct, from 08:10 to 08:40, the highest at 08:40: 420 people "
        "against a threshold of 400; 1 not acknowledged."
    )
    for scenario, sentence in [(EVENING, SPIKE), (EVENING, TICKET_HALL_LEVEL), (EVENING, BREACH)]:
        assert is_true(scenario, sentence), sentence
    assert is_true(MORE_ALERTS, ALERT) and is_true(MORE_ALERTS, ALERTS)
    for scenario, sentence in [(OUTAGES, SILENT), (OUTAGES, REPORTED_DOWN)]:
        assert is_true(scenario, sentence), sentence
    assert is_true(QUIET_AND_BUSY, QUIET_DAY) and is_true(QUIET_AND_BUSY, WEEK_SURGE)


@pytest.mark.parametrize("scenario", [*SCENARIOS, MORE_ALERTS], ids=lambda scenario: scenario.name)
def test_every_fact_the_product_can_tell_is_true_and_the_code_alone_names_every_planted_event(scenario):
    checker = Checker(scenario.history)
    untrue = [verdict for event in events_of(scenario) if not (verdict := checker.check(event.sentence)).true]
    assert untrue == []
    sentences = [told_sentence.text for told_sentence in write_report(None, scenario.history).sentences]
    assert all(checker.check(sentence).true for sentence in sentences)
    assert [planted for planted in scenario.planted if not names_event(planted, sentences)] == []


def test_durations_are_read_with_their_unit():
    assert is_true(OUTAGES, changed(SILENT, "3 hours", "180 minutes"))
    assert refuted(OUTAGES, changed(SILENT, "3 hours", "120 minutes"))
    assert refuted(OUTAGES, changed(SILENT, "3 hours", "3 minutes"))
    assert refuted(EVENING, changed(BREACH, "3 hours", "120 minutes"))


def test_a_difference_is_read_as_a_percentage_or_as_people():
    assert is_true(EVENING, changed(SPIKE, "215% above", "60 people above"))
    assert refuted(EVENING, changed(SPIKE, "215% above", "215 people above"))
    assert refuted(EVENING, changed(SPIKE, "215% above", "60% above"))
    verdict = Checker(EVENING.history).check(changed(SPIKE, "88 people", "88%"))
    assert not verdict.true and verdict.unchecked


def test_the_wrong_direction_is_untrue():
    assert refuted(EVENING, changed(SPIKE, "above", "below"))
    assert refuted(QUIET_AND_BUSY, changed(QUIET_DAY, "below", "above"))
    assert refuted(QUIET_AND_BUSY, changed(WEEK_SURGE, "higher", "lower"))


def test_a_value_told_of_the_wrong_subject_is_untrue():
    # The ticket hall's mean and peak told as its camera's, then the fish market's spike told as the taxi rank's.
    assert refuted(EVENING, changed(TICKET_HALL_LEVEL, "Main hall's Ticket hall zone", "Main hall"))
    assert refuted(EVENING, changed(SPIKE, "Fish market", "Taxi rank"))
    assert refuted(EVENING, changed(BREACH, "Main hall's Ticket hall zone", "Harbour steps' Ferry queue zone"))
    verdict = Checker(EVENING.history).check(changed(SPIKE, "Fish market", "Fish shop"))
    assert not verdict.true and "no camera or zone" in verdict.reason


def test_the_wrong_period_is_untrue():
    assert refuted(EVENING, changed(SPIKE, "11:00", "12:00"))
    assert refuted(EVENING, changed(SPIKE, "Thu 15 Oct", "Wed 14 Oct"))
    assert refuted(EVENING, changed(SPIKE, "Thu 15 Oct", "Fri 15 Oct"))  # not a Friday
    assert refuted(QUIET_AND_BUSY, changed(QUIET_DAY, "for a Saturday", "for a Sunday"))
    assert refuted(QUIET_AND_BUSY, changed(WEEK_SURGE, "the same day", "the same week"))
    assert refuted(OUTAGES, changed(SILENT, "from 14:00 to 17:00", "from 13:00 to 16:00"))
    assert refuted(OUTAGES, changed(REPORTED_DOWN, "to 12:00", "to 13:00"))


def test_a_mean_told_as_a_peak_is_untrue():
    assert (
        TICKET_HALL_LEVEL == "Main hall's Ticket hall zone averaged 27 people and peaked at 146 at 18:00 on Thu 15 Oct."
    )
    assert refuted(EVENING, changed(TICKET_HALL_LEVEL, "peaked at 146", "peaked at 27"))
    assert refuted(EVENING, changed(TICKET_HALL_LEVEL, "at 18:00", "at 17:00"))  # not the highest peak


def test_alerts_thresholds_and_rankings_are_checked_in_full():
    assert refuted(EVENING, changed(BREACH, "acknowledged", "not acknowledged"))
    assert refuted(EVENING, changed(BREACH, "raised at 17:25", "raised at 17:20"))
    assert refuted(MORE_ALERTS, changed(ALERT, "not acknowledged", "acknowledged"))
    assert refuted(MORE_ALERTS, changed(ALERT, "95 people", "90 people"))
    assert refuted(MORE_ALERTS, changed(ALERTS, "1 not acknowledged", "all acknowledged"))
    assert refuted(MORE_ALERTS, changed(ALERTS, "2 alerts", "3 alerts"))
    assert refuted(MORE_ALERTS, changed(ALERTS, "the highest at 08:40", "the highest at 08:10"))
    assert refuted(EVENING, changed(BREACH, "threshold of 120", "threshold of 100"))
    assert refuted(EVENING, changed(BREACH, "highest peak of 146", "highest peak of 131"))
    sentences = [event.sentence for event in events_of(EVENING)]
    (ranking,) = [sentence for sentence in sentences if "was the busiest camera" in sentence]
    (busiest,) = [sentence for sentence in sentences if sentence.startswith("At Central Station")]
    assert refuted(
        EVENING, changed(ranking, "Fish market (24 people) and Taxi rank", "Taxi rank (24 people) and Fish market")
    )
    assert refuted(EVENING, changed(busiest, "08:00 to 09:00", "09:00 to 10:00"))


@pytest.mark.parametrize("sentence", [DEMO_INVENTION, "a camera counted 120 people on average", "Main hall was busy."])
def test_a_sentence_the_checker_cannot_read_is_untrue_and_unchecked(sentence):
    verdict = Checker(EVENING.history).check(sentence)
    assert not verdict.true and verdict.unchecked


def test_an_event_is_named_only_by_its_subject_time_and_kind():
    spike, _, _ = EVENING.planted
    assert names_event(spike, [SPIKE])
    assert not names_event(spike, [changed(SPIKE, "11:00", "12:00")])
    assert not names_event(spike, [changed(SPIKE, "Fish market", "Taxi rank")])
    assert not names_event(spike, [told(EVENING, "level", "Fish market")])
    _, _, alert = EVENING.planted
    grouped = changed(
        ALERTS,
        "Main hall on Thu 15 Oct, from 08:10 to 08:40",
        "Main hall's Ticket hall zone on Thu 15 Oct, from 17:10 to 17:40",
    )
    assert names_event(alert, [BREACH]) and names_event(alert, [grouped])
    assert not names_event(alert, [changed(BREACH, "raised at 17:25", "raised at 17:20")])
    reported, silent, _, _ = OUTAGES.planted
    assert names_event(silent, [SILENT]) and names_event(reported, [REPORTED_DOWN])
    assert not names_event(silent, [changed(SILENT, "to 17:00", "to 16:00")])


def test_without_a_model_only_the_code_choice_runs_and_meets_its_targets():
    with pytest.raises(ValueError, match="needs a model"):
        run_eval(None, ["full cache"])
    result = run_eval(None)
    json.dumps(result)
    outcome = result["settings"]["no model"]
    assert list(result["settings"]) == ["no model"]
    assert outcome["recall_total"] == {"named": 10, "planted": 10, "share": 1.0}
    assert outcome["untrue"] == [] and outcome["meets_targets"] and outcome["differs_from_ranking"] == 0
    assert "| no model | 100% (10/10) | 0 (0) |" in format_eval(result)


def test_the_model_chooses_only_true_sentences(llm):
    result = run_eval(llm, ["SnapKV 512"], scenarios=[EVENING])
    outcome = result["settings"]["SnapKV 512"]
    assert outcome["untrue"] == []
    assert outcome["recall_total"]["planted"] == 3
    assert outcome["kept_tokens"] == 512 and outcome["prompt_tokens"] > 4000 and outcome["kv_cache_mb"] > 0
    assert 0 < outcome["chosen_by_model"] <= outcome["sentences"]
    assert outcome["words_per_report"] > 0 and outcome["seconds_per_report"]["max"] > 0  # speed: `make bench`
    assert outcome["differs_from_ranking"] in (0, 1)
