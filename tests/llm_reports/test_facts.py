"""Facts: every value against a hand computation on the planted history, in local time."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from llm_reports.facts import (
    UNUSUAL_MIN_PEOPLE,
    UNUSUAL_RELATIVE_MARGIN,
    compute_facts,
    format_day,
    format_people,
    format_percent,
    round_shown,
)
from llm_reports.history import Bucket, History, Series
from tests.llm_reports.sample_history import DAY_BEFORE, REPORT_DAY, TIMEZONE, WEEK_BEFORE, build_history, local_time

# Sums of the report day's bucket means, by the construction in tests/llm_reports/__init__.py.
EAST_SUM = sum(40 + hour for hour in range(24)) - (40 + 14) + 175
FAR_SUM = sum(30 + hour for hour in range(24)) - (30 + 14) + 150
NEAR_SUM = 10 * 23 + 25
WEST_SUM = 30 * 22 + 35 * 2
GATE_SUM = 20 * 22 + 5  # 23 buckets: no 03:00


@pytest.fixture(scope="module")
def facts():
    return compute_facts(build_history())


def percent_change(current, previous):
    return (current - previous) / previous * 100


def test_camera_facts(facts):
    east, west, gate = (facts.series((camera, None)) for camera in ("East entrance", "West gate", "Gate 2"))
    assert east.mean == pytest.approx(EAST_SUM / 24)
    assert (east.peak, east.peak_at) == (220, local_time(REPORT_DAY, 14))
    assert (east.frames, east.buckets) == (24 * 120, 24)
    assert west.mean == pytest.approx(WEST_SUM / 24)
    assert (west.peak, west.peak_at) == (140, local_time(REPORT_DAY, 19))
    assert gate.mean == pytest.approx(GATE_SUM / 23)
    assert (gate.frames, gate.buckets) == (23 * 60, 23)
    assert (gate.peak, gate.peak_at) == (30, local_time(REPORT_DAY, 0)), "equal peaks: the earliest bucket"


def test_zone_facts(facts):
    far, near = facts.zones_of("East entrance")
    assert (far.zone, far.threshold) == ("Far side", 150)
    assert far.mean == pytest.approx(FAR_SUM / 24)
    assert (far.peak, far.peak_at, far.frames) == (160, local_time(REPORT_DAY, 14), 24 * 120)
    assert near.mean == pytest.approx(NEAR_SUM / 24)
    assert (near.peak, near.peak_at) == (30, local_time(REPORT_DAY, 14))


def test_times_are_local_to_the_history_timezone(facts):
    peak_at = facts.series(("East entrance", None)).peak_at
    assert (peak_at.hour, str(peak_at.tzinfo)) == (14, TIMEZONE)
    assert facts.period_start.isoformat() == "2026-11-28T00:00:00+08:00"


def test_rankings(facts):
    assert facts.busiest_cameras == ("East entrance", "West gate", "Gate 2")
    assert facts.busiest_zones == (("East entrance", "Far side"), ("East entrance", "Near side"))
    assert facts.highest_camera_peak == ("East entrance", None)
    assert facts.highest_zone_peak == ("East entrance", "Far side")


def test_day_over_day_and_week_over_week(facts):
    east = facts.series(("East entrance", None))
    assert east.day_change.previous == pytest.approx(sum(50 + hour for hour in range(24)) / 24)
    assert east.day_change.percent == pytest.approx(percent_change(EAST_SUM / 24, 61.5))
    assert east.week_change.percent == pytest.approx(percent_change(EAST_SUM / 24, 51.5))
    west = facts.series(("West gate", None))
    assert west.day_change.percent == pytest.approx(percent_change(WEST_SUM / 24, 30))
    assert west.week_change.percent == pytest.approx(percent_change(WEST_SUM / 24, 20))
    assert round_shown(west.week_change.percent) == 52

    period_mean = (EAST_SUM + WEST_SUM + GATE_SUM) / (24 + 24 + 23)
    day_before_mean = (sum(50 + hour for hour in range(24)) + 30 * 24 + 20 * 24) / 72
    week_before_mean = (sum(40 + hour for hour in range(24)) + 20 * 24 + 20 * 24) / 72
    assert facts.overall_mean == pytest.approx(period_mean)
    assert facts.overall_day_change.percent == pytest.approx(percent_change(period_mean, day_before_mean))
    assert facts.overall_week_change.percent == pytest.approx(percent_change(period_mean, week_before_mean))
    assert facts.previous_start == local_time(DAY_BEFORE, 0)
    assert WEEK_BEFORE in facts.days() and DAY_BEFORE in facts.days()


def test_changes_are_none_without_earlier_data():
    facts = compute_facts(build_history(weeks=1))
    west = facts.series(("West gate", None))
    assert west.day_change.percent is not None, "the day before is inside one week"
    assert west.week_change.previous is None and west.week_change.percent is None
    assert facts.overall_week_change.percent is None


def test_threshold_breaches(facts):
    far, west = facts.breaches
    assert (far.camera, far.zone, far.threshold, far.count) == ("East entrance", "Far side", 150, 1)
    assert far.first_at == far.last_at == far.highest_peak_at == local_time(REPORT_DAY, 14)
    assert far.highest_peak == 160
    assert (west.camera, west.zone, west.count, west.highest_peak) == ("West gate", None, 2, 140)
    assert (west.first_at, west.last_at) == (local_time(REPORT_DAY, 18), local_time(REPORT_DAY, 19))
    assert west.highest_peak_at == local_time(REPORT_DAY, 19)
    assert west.percent_over == pytest.approx(40)
    assert west.times == (local_time(REPORT_DAY, 18), local_time(REPORT_DAY, 19))


def test_only_the_alerts_of_the_period(facts):
    assert [(alert.camera, alert.zone, alert.raised_at) for alert in facts.alerts] == [
        ("East entrance", "Far side", local_time(REPORT_DAY, 14, 10)),
        ("West gate", None, local_time(REPORT_DAY, 18, 5)),
    ]
    assert facts.alerts[0].acknowledged and not facts.alerts[1].acknowledged


def test_unusual_values_find_the_planted_spike_and_dip(facts):
    spike, dip = facts.unusual
    assert (spike.camera, spike.at, spike.value, spike.usual, spike.direction) == (
        "East entrance",
        local_time(REPORT_DAY, 14),
        175,
        54,
        "above",
    )
    assert spike.percent_from_usual == pytest.approx((175 - 54) / 54 * 100)
    assert (dip.camera, dip.at, dip.value, dip.usual, dip.direction) == (
        "Gate 2",
        local_time(REPORT_DAY, 8),
        5,
        20,
        "below",
    )


def test_flat_data_has_nothing_unusual_and_no_breach():
    facts = compute_facts(build_history(planted=False))
    assert facts.unusual == ()
    assert facts.breaches == ()
    assert facts.alerts == ()


def test_a_usual_level_needs_two_earlier_values():
    """One week of history: no earlier Saturday at all; two weeks: a single one. Neither is enough."""
    assert compute_facts(build_history(weeks=1)).unusual == ()
    assert compute_facts(build_history(weeks=2)).unusual == ()
    assert len(compute_facts(build_history(weeks=3)).unusual) == 2


@pytest.mark.parametrize(("value", "flagged"), [(30, False), (30.5, True), (10, False), (9.5, True)])
def test_the_unusual_margin_is_a_floor_of_ten_people_on_quiet_cameras(value, flagged):
    """Gate 2 usually has 20 people: half of that is 10, and the margin is max(10, 10), strictly exceeded."""
    assert UNUSUAL_RELATIVE_MARGIN * 20 <= UNUSUAL_MIN_PEOPLE
    history = build_history(planted=False)
    gate = history.series[-1]
    noon = local_time(REPORT_DAY, 12)
    buckets = [Bucket(b.start, value, b.peak, b.frames) if b.start == noon else b for b in gate.buckets]
    history = replace(history, series=[*history.series[:-1], replace(gate, buckets=buckets)])
    assert bool(compute_facts(history).unusual) is flagged


def test_as_dict_is_json_with_iso_times_and_rounded_floats(facts):
    as_dict = json.loads(json.dumps(facts.as_dict()))
    east = as_dict["cameras"][0]
    assert east["camera"] == "East entrance"
    assert east["mean"] == round(EAST_SUM / 24, 2)
    assert east["peak_at"] == "2026-11-28T14:00:00+08:00"
    assert as_dict["busiest_zones"] == [["East entrance", "Far side"], ["East entrance", "Near side"]]


def test_a_day_that_gains_an_hour_to_dst_is_one_day_compared_with_whole_days():
    """Paris leaves summer time on 25 October 2026: that local day has 25 hourly buckets."""
    paris = ZoneInfo("Europe/Paris")
    start, end = datetime(2026, 10, 25, tzinfo=paris), datetime(2026, 10, 26, tzinfo=paris)
    first_utc = datetime(2026, 10, 23, 22, tzinfo=UTC)  # midnight in Paris two days before
    buckets = [Bucket(first_utc + timedelta(hours=hour), 10, 12, 6) for hour in range(24 + 24 + 25)]
    history = History(start, end, "Europe/Paris", 60, [Series("Quay", None, None, buckets)])
    facts = compute_facts(history)
    quay = facts.series(("Quay", None))
    assert (quay.buckets, facts.is_single_day) == (25, True)
    assert facts.previous_start == datetime(2026, 10, 24, tzinfo=paris)
    assert quay.day_change.percent == 0
    assert quay.peak_at.isoformat() == "2026-10-25T00:00:00+02:00"


def test_naive_periods_are_refused():
    history = build_history(weeks=1)
    naive = replace(history, period_start=history.period_start.replace(tzinfo=None))
    with pytest.raises(ValueError, match="timezone-aware"):
        compute_facts(naive)


def test_shown_rounding_is_half_away_from_zero():
    assert round_shown(120.5) == 121 and round_shown(119.5) == 120
    assert round_shown(-12.5) == -13
    assert round_shown(2.675, 2) == Decimal("2.68")
    assert format_people(1234.4) == "1,234"
    assert format_percent(-8.06) == "8%"
    assert format_day(local_time(REPORT_DAY, 0) + timedelta(days=1)) == "Sun 29 Nov"
