"""Events: what a report can tell, ranked, each as a sentence rendered in code from the history's values."""

import json
from dataclasses import replace
from datetime import UTC, timedelta

from llm_reports.events import MUST_TELL, Event, entity_name, find_events, must_tell
from llm_reports.facts import compute_facts
from llm_reports.history import AlertRecord, History, Outage
from tests.llm_reports.sample_history import REPORT_DAY, build_history, local_time

HISTORY = build_history()


def events_of(history: History) -> tuple[Event, ...]:
    return find_events(history, compute_facts(history))


def of_kind(events: tuple[Event, ...], kind: str) -> list[Event]:
    return [event for event in events if event.kind == kind]


def without_buckets(history: History, camera: str, hours: range) -> History:
    """`history` with `camera`'s buckets of the report day's `hours` removed, as when it sent nothing."""
    gone = {local_time(REPORT_DAY, hour).astimezone(UTC) for hour in hours}
    series = [
        replace(item, buckets=[bucket for bucket in item.buckets if bucket.start not in gone])
        if item.camera == camera
        else item
        for item in history.series
    ]
    return replace(history, series=series)


def test_ids_follow_the_ranking_and_crowding_with_alerts_leads():
    events = events_of(HISTORY)
    assert [event.id for event in events] == [f"F{number}" for number in range(1, len(events) + 1)]
    assert [event.importance for event in events] == sorted((event.importance for event in events), reverse=True)
    assert [event.kind for event in events[:3]] == ["breach", "breach", "unusual_hour"]
    assert events[0].sentence == (
        "West gate was over its threshold of 100 people for 2 hours on Sat 28 Nov, from 18:00 to 20:00, with a "
        "highest peak of 140 at 19:00; an alert was raised at 18:05, not acknowledged."
    )
    assert events[0].importance == 100.0, "an alert not acknowledged ranks its sentence first"


def test_an_alert_without_hours_over_the_threshold_is_told_alone():
    quiet_zone = [replace(item, threshold=None) if item.zone == "Far side" else item for item in HISTORY.series]
    (alert,) = of_kind(events_of(replace(HISTORY, series=quiet_zone)), "alert")
    assert alert.sentence == (
        "An alert was raised for East entrance's Far side zone at 14:10 on Sat 28 Nov: 160 people against a "
        "threshold of 150, acknowledged."
    )
    assert alert.importance == 90.0


def test_the_planted_events_are_told_with_their_values():
    sentences = [event.sentence for event in events_of(HISTORY)]
    assert (
        "At 14:00 on Sat 28 Nov, East entrance averaged 175 people, 224% above its usual 54 for that hour and "
        "weekday." in sentences
    )
    assert "At 08:00 on Sat 28 Nov, Gate 2 averaged 5 people, 75% below its usual 20 for that hour and weekday." in (
        sentences
    )
    assert "West gate averaged 30 people, 52% higher than the same day a week earlier (20 people)." in sentences
    assert (
        "At Bund Plaza, the busiest hour was 14:00 to 15:00 on Sat 28 Nov, with its camera averaging 175 people."
        in sentences
    )


def test_a_zone_is_always_named_with_its_camera():
    assert entity_name(("East entrance", "Far side")) == "East entrance's Far side zone"
    assert entity_name(("Hall", "Waiting area")) == "Hall's Waiting area"
    assert entity_name(("Hall", None)) == "Hall"
    zone_breach = next(event for event in events_of(HISTORY) if event.kind == "breach" and event.zone)
    assert zone_breach.sentence == (
        "East entrance's Far side zone was over its threshold of 150 people for 1 hour on Sat 28 Nov, from 14:00 to "
        "15:00, with a highest peak of 160 at 14:00; an alert was raised at 14:10, acknowledged."
    )


def test_must_tell_is_every_event_of_at_least_the_must_tell_importance():
    events = events_of(HISTORY)
    musts = must_tell(events)
    assert {event.kind for event in musts} == {"breach", "unusual_hour", "week_change"}
    assert all(event.importance >= MUST_TELL for event in musts)
    assert all(event.importance < MUST_TELL for event in events if event not in musts)


def test_a_camera_silent_in_hours_it_usually_counts_is_an_outage():
    events = events_of(without_buckets(HISTORY, "Gate 2", range(10, 14)))
    (outage,) = of_kind(events, "outage")
    assert outage.sentence == (
        "Gate 2 sent no counts for 4 hours on Sat 28 Nov, from 10:00 to 14:00, hours in which it usually counts."
    )
    assert outage.importance >= MUST_TELL
    assert (outage.start, outage.end) == (local_time(REPORT_DAY, 10), local_time(REPORT_DAY, 14))


def test_one_missing_hour_and_hours_not_yet_received_are_not_outages():
    # Gate 2 already misses 03:00 in the sample; every camera misses 20:00 onwards: they have not arrived yet.
    assert of_kind(events_of(HISTORY), "outage") == []
    late = without_buckets(HISTORY, "Gate 2", range(20, 24))
    late = without_buckets(without_buckets(late, "West gate", range(20, 24)), "East entrance", range(20, 24))
    assert of_kind(events_of(late), "outage") == []


def test_a_reported_outage_is_told_once_and_covers_its_silent_hours():
    down = Outage("Gate 2", local_time(REPORT_DAY, 10), local_time(REPORT_DAY, 14))
    history = replace(without_buckets(HISTORY, "Gate 2", range(10, 14)), outages=[down])
    (outage,) = of_kind(events_of(history), "outage")
    assert outage.sentence == "Gate 2 was reported down from 10:00 to 14:00 on Sat 28 Nov."


def test_an_outage_still_going_at_the_end_of_the_period_says_so():
    down = Outage("Gate 2", local_time(REPORT_DAY, 22), None)
    (outage,) = of_kind(events_of(replace(HISTORY, outages=[down])), "outage")
    assert outage.sentence == "Gate 2 was reported down from 22:00 on Sat 28 Nov to the end of the period."
    assert outage.end is None


def test_a_whole_quiet_day_is_one_unusual_day_not_many_unusual_hours():
    day = {local_time(REPORT_DAY, hour).astimezone(UTC) for hour in range(24)}
    series = [
        replace(item, buckets=[replace(b, mean=8.0) if b.start in day else b for b in item.buckets])
        if item.camera == "Gate 2"
        else item
        for item in HISTORY.series
    ]
    events = events_of(replace(HISTORY, series=series))
    (quiet,) = of_kind(events, "unusual_day")
    assert quiet.sentence == "Gate 2 averaged 8 people on Sat 28 Nov, 60% below its usual 20 for a Saturday."
    assert not [event for event in of_kind(events, "unusual_hour") if event.camera == "Gate 2"]


def test_the_busiest_hour_of_a_site_adds_its_cameras():
    history = replace(HISTORY, sites={"East entrance": "Bund Plaza", "West gate": "Bund Plaza"})
    (busiest,) = of_kind(events_of(history), "busiest_hour")
    assert busiest.sentence == (
        "At Bund Plaza, the busiest hour was 14:00 to 15:00 on Sat 28 Nov, with its 2 cameras averaging 205 people "
        "between them."
    )


def test_a_camera_without_counts_in_the_period_says_so():
    start = HISTORY.period_start
    series = [
        replace(item, buckets=[b for b in item.buckets if b.start < start]) if item.camera == "Gate 2" else item
        for item in HISTORY.series
    ]
    events = events_of(replace(HISTORY, series=series))
    assert "Gate 2 had no counts in this period." in [event.sentence for event in events]


def test_events_round_trip_through_json():
    events = events_of(HISTORY)
    stored = json.loads(json.dumps([event.as_dict() for event in events]))
    restored = [Event.from_dict(data) for data in stored]
    assert [event.sentence for event in restored] == [event.sentence for event in events]
    assert restored[0].start == events[0].start and restored[0].end == events[0].end
    assert restored[0].value == 140.0 and restored[0].reference == 100.0


def test_a_history_without_earlier_weeks_tells_levels_and_no_unusual_values():
    start = HISTORY.period_start - timedelta(days=1)
    series = [replace(item, buckets=[b for b in item.buckets if b.start >= start]) for item in HISTORY.series]
    events = events_of(replace(HISTORY, series=series))
    kinds = {event.kind for event in events}
    assert not kinds & {"unusual_hour", "unusual_day", "week_change", "outage"}
    assert {"breach", "level"} <= kinds


def test_several_alerts_of_one_subject_are_told_together():
    extra = [
        AlertRecord("West gate", None, local_time(REPORT_DAY, 19, 5), 150, 100, acknowledged=True),
        AlertRecord("West gate", None, local_time(REPORT_DAY, 20, 40), 110, 100),
    ]
    history = replace(HISTORY, alerts=[*HISTORY.alerts, *extra])
    (west,) = [event for event in of_kind(events_of(history), "breach") if event.camera == "West gate"]
    assert west.sentence.endswith("; 3 alerts were raised from 18:05 to 20:40, 2 not acknowledged.")
    without_threshold = [replace(item, threshold=None) for item in history.series]
    alerts = of_kind(events_of(replace(history, series=without_threshold)), "alert")
    assert [event.sentence for event in alerts] == [
        "3 alerts were raised for West gate on Sat 28 Nov, from 18:05 to 20:40, the highest at 19:05: 150 people "
        "against a threshold of 100; 2 not acknowledged.",
        "An alert was raised for East entrance's Far side zone at 14:10 on Sat 28 Nov: 160 people against a "
        "threshold of 150, acknowledged.",
    ]
    assert alerts[0].importance == 100.0 and alerts[0].value == 150


def test_a_span_that_ends_at_midnight_ends_at_24_00():
    late = local_time(REPORT_DAY, 23).astimezone(UTC)
    series = [
        replace(item, buckets=[replace(b, peak=150.0) if b.start == late else b for b in item.buckets])
        if item.camera == "West gate"
        else item
        for item in HISTORY.series
    ]
    (breach,) = [event for event in of_kind(events_of(replace(HISTORY, series=series)), "breach") if not event.zone]
    assert breach.sentence == (
        "West gate was over its threshold of 100 people in 3 hours on Sat 28 Nov, between 18:00 and 24:00, with a "
        "highest peak of 150 at 23:00; an alert was raised at 18:05, not acknowledged."
    )
