"""A plain JSON history file in, a History out: bucketing on the local clock, and a clear error for every mistake."""

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from llm_reports.history import AlertRecord, Bucket, Outage
from llm_reports.history_file import HistoryFileError, history_from_json, read_history_file
from llm_reports.report import write_report

KOLKATA = ZoneInfo("Asia/Kolkata")  # UTC+05:30: a local hour starts at half past a UTC hour
EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "history-example.json"


def small_history() -> dict:
    """Saturday 28 November 2026 in Kolkata; Gate's points are out of order, one is in UTC and one is at the end of
    the period (ignored)."""
    return {
        "period": {"start": "2026-11-28T00:00:00+05:30", "end": "2026-11-29T00:00:00+05:30"},
        "timezone": "Asia/Kolkata",
        "cameras": [
            {
                "name": "Gate",
                "site": "Old fort",
                "threshold": 25,
                "counts": [
                    ["2026-11-28T14:55:00+05:30", 30],
                    ["2026-11-28T13:59:59+05:30", 7],
                    ["2026-11-28T14:05:00+05:30", 10],
                    ["2026-11-28T08:45:00Z", 20],
                    ["2026-11-21T14:30:00+05:30", 12.5],
                    ["2026-11-29T00:00:00+05:30", 99],
                ],
                "zones": [{"name": "Stairs", "threshold": 10, "counts": [["2026-11-28T14:10:00+05:30", 12]]}],
            },
            {"name": "Kiosk", "counts": []},
        ],
        "alerts": [
            {
                "camera": "Gate",
                "zone": "Stairs",
                "raised_at": "2026-11-28T14:10:00+05:30",
                "count": 12,
                "threshold": 10,
                "acknowledged": True,
            }
        ],
        "outages": [{"camera": "Kiosk", "start": "2026-11-28T09:00:00+05:30", "end": None}],
    }


def write_json(directory: Path, data: object) -> Path:
    path = directory / "history.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=KOLKATA)


def test_points_become_buckets_on_the_local_clock_oldest_first(tmp_path):
    history = read_history_file(write_json(tmp_path, small_history()))

    assert history.timezone == "Asia/Kolkata" and history.bucket_minutes == 60
    assert (history.period_start, history.period_end) == (local(28, 0), local(29, 0))
    assert [(series.camera, series.zone, series.threshold) for series in history.series] == [
        ("Gate", None, 25.0),
        ("Gate", "Stairs", 10.0),
        ("Kiosk", None, None),
    ]
    gate, stairs, kiosk = history.series
    assert gate.buckets == [
        Bucket(local(21, 14), 12.5, 12.5, 1),
        Bucket(local(28, 13), 7.0, 7.0, 1),
        Bucket(local(28, 14), 20.0, 30.0, 3),  # 14:05, 14:15 (given in UTC) and 14:55; 00:00 the next day is left out
    ]
    assert gate.buckets[2].start == datetime(2026, 11, 28, 8, 30, tzinfo=UTC)
    assert stairs.buckets == [Bucket(local(28, 14), 12.0, 12.0, 1)]
    assert kiosk.buckets == []
    assert history.sites == {"Gate": "Old fort"}
    assert history.alerts == [AlertRecord("Gate", "Stairs", local(28, 14, 10), 12.0, 10.0, acknowledged=True)]
    assert history.outages == [Outage("Kiosk", local(28, 9), None)]


def test_shorter_buckets_are_aligned_to_the_local_clock_too():
    data = small_history()
    data["bucket_minutes"] = 30
    gate = history_from_json(data).series[0]
    assert [(bucket.start, bucket.frames) for bucket in gate.buckets] == [
        (local(21, 14, 30), 1),
        (local(28, 13, 30), 1),
        (local(28, 14), 2),
        (local(28, 14, 30), 1),
    ]


def test_optional_keys_may_be_null():
    data = small_history()
    data.update(bucket_minutes=None, outages=None)
    cameras(data)[0].update(site=None, threshold=None, zones=None)
    data["alerts"][0].update(zone=None, acknowledged=None)
    history = history_from_json(data)
    assert history.bucket_minutes == 60 and history.outages == [] and history.sites == {}
    assert [(series.camera, series.zone, series.threshold) for series in history.series] == [
        ("Gate", None, None),
        ("Kiosk", None, None),
    ]
    assert history.alerts == [AlertRecord("Gate", None, local(28, 14, 10), 12.0, 10.0, acknowledged=False)]


def test_the_hour_the_clocks_go_back_stays_two_buckets():
    data = {
        "period": {"start": "2026-10-25T00:00:00+02:00", "end": "2026-10-26T00:00:00+01:00"},
        "timezone": "Europe/Paris",
        "cameras": [{"name": "Gate", "counts": [["2026-10-25T02:30:00+02:00", 4], ["2026-10-25T02:10:00+01:00", 8]]}],
    }
    buckets = history_from_json(data).series[0].buckets
    assert [(bucket.start, bucket.mean) for bucket in buckets] == [
        (datetime(2026, 10, 25, 0, 0, tzinfo=UTC), 4.0),
        (datetime(2026, 10, 25, 1, 0, tzinfo=UTC), 8.0),
    ]


def cameras(data: dict) -> list[dict]:
    return data["cameras"]


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        pytest.param(
            lambda data: data.update(colour="red"),
            'unknown key "colour" (known keys: period, timezone, cameras, bucket_minutes, alerts, outages)',
            id="unknown-key",
        ),
        pytest.param(
            lambda data: cameras(data)[0].update(treshold=5),
            'cameras[0]: unknown key "treshold" (known keys: name, counts, site, threshold, zones)',
            id="unknown-camera-key",
        ),
        pytest.param(lambda data: data.pop("period"), 'missing key "period"', id="missing-key"),
        pytest.param(
            lambda data: [data.pop("period"), data.pop("timezone")],
            'missing keys "period", "timezone"',
            id="missing-keys",
        ),
        pytest.param(
            lambda data: cameras(data)[1].pop("counts"), 'cameras[1]: missing key "counts"', id="missing-counts"
        ),
        pytest.param(
            lambda data: data.update(cameras={}), "cameras: expected an array, got an object", id="cameras-not-array"
        ),
        pytest.param(lambda data: data.update(cameras=[]), "cameras: expected at least one item", id="no-cameras"),
        pytest.param(
            lambda data: cameras(data)[0].update(threshold="150"),
            "cameras[0].threshold: expected a number for the threshold, got a string",
            id="threshold-type",
        ),
        pytest.param(
            lambda data: cameras(data)[0].update(name=" "), "cameras[0].name: must not be empty", id="empty-name"
        ),
        pytest.param(
            lambda data: cameras(data)[0]["counts"].insert(0, {"time": "2026-11-28T14:00:00+05:30", "value": 3}),
            "cameras[0].counts[0]: expected a [time, people] pair, got an object",
            id="point-not-pair",
        ),
        pytest.param(
            lambda data: cameras(data)[0]["counts"].insert(1, ["2026-11-28 14:00", 3]),
            'cameras[0].counts[1]: time "2026-11-28 14:00" has no UTC offset',
            id="naive-point",
        ),
        pytest.param(
            lambda data: cameras(data)[0]["zones"][0]["counts"].append(["yesterday", 3]),
            'cameras[0].zones[0].counts[1]: time "yesterday" is not an ISO 8601 date and time',
            id="not-a-time",
        ),
        pytest.param(
            lambda data: data["period"].update(start="2026-11-28T00:00:00"),
            'period.start: time "2026-11-28T00:00:00" has no UTC offset',
            id="naive-period",
        ),
        pytest.param(
            lambda data: data.update(timezone="Mars/Olympus"),
            'timezone: unknown time zone "Mars/Olympus"',
            id="unknown-time-zone",
        ),
        pytest.param(
            lambda data: data["period"].update(end="2026-11-28T00:00:00+05:30"),
            "period.end: 2026-11-28T00:00:00+05:30 is not after the start, 2026-11-28T00:00:00+05:30",
            id="empty-period",
        ),
        pytest.param(
            lambda data: data["period"].update(start="2026-11-28T00:00:00+00:00"),
            "period.start: 05:30 in Asia/Kolkata is not on a 60-minute bucket boundary",
            id="period-off-the-buckets",
        ),
        pytest.param(
            lambda data: data.update(bucket_minutes=7),
            "bucket_minutes: 7 does not divide a day (1440 minutes) into buckets",
            id="bucket-minutes",
        ),
        pytest.param(
            lambda data: data.update(bucket_minutes=60.0),
            "bucket_minutes: expected a whole number of minutes, got a number",
            id="bucket-minutes-float",
        ),
        pytest.param(
            lambda data: cameras(data)[0]["counts"].append(["2026-11-28T15:00:00+05:30", -1]),
            "cameras[0].counts[6]: count -1 is negative",
            id="negative-count",
        ),
        pytest.param(
            lambda data: cameras(data)[0]["counts"].append(["2026-11-28T15:00:00+05:30", float("inf")]),
            "cameras[0].counts[6]: count inf is not a finite number",
            id="infinite-count",
        ),
        pytest.param(
            lambda data: cameras(data)[0]["counts"].append(["2026-11-28T15:00:00+05:30", True]),
            "cameras[0].counts[6]: expected a number for the count, got true",
            id="boolean-count",
        ),
        pytest.param(
            lambda data: cameras(data)[1].update(name="Gate"),
            'cameras[1].name: another camera is already named "Gate"',
            id="duplicate-camera",
        ),
        pytest.param(
            lambda data: cameras(data)[0]["zones"].append({"name": "Stairs", "counts": []}),
            'cameras[0].zones[1].name: camera "Gate" already has a zone named "Stairs"',
            id="duplicate-zone",
        ),
        pytest.param(
            lambda data: data["alerts"][0].update(camera="Nowhere"),
            'alerts[0].camera: no camera named "Nowhere" in cameras (known: Gate, Kiosk)',
            id="alert-camera",
        ),
        pytest.param(
            lambda data: data["alerts"][0].update(zone="Roof"),
            'alerts[0].zone: camera "Gate" has no zone "Roof" (its zones: Stairs)',
            id="alert-zone",
        ),
        pytest.param(
            lambda data: data["alerts"][0].update(camera="Kiosk"),
            'alerts[0].zone: camera "Kiosk" has no zone "Stairs" (it has no zones)',
            id="alert-zone-of-another-camera",
        ),
        pytest.param(
            lambda data: data["alerts"][0].update(acknowledged="yes"),
            "alerts[0].acknowledged: expected true or false, got a string",
            id="acknowledged-type",
        ),
        pytest.param(
            lambda data: data["outages"][0].update(camera="Nowhere"),
            'outages[0].camera: no camera named "Nowhere" in cameras',
            id="outage-camera",
        ),
        pytest.param(
            lambda data: data["outages"][0].update(end="2026-11-28T08:00:00+05:30"),
            "outages[0].end: 2026-11-28T08:00:00+05:30 is not after the start, 2026-11-28T09:00:00+05:30",
            id="outage-end-before-start",
        ),
        pytest.param(
            lambda data: cameras(data)[0].update(threshold=0),
            "cameras[0].threshold: threshold 0 is not above zero",
            id="camera-threshold",
        ),
        pytest.param(
            lambda data: cameras(data)[0]["zones"][0].update(threshold=-5),
            "cameras[0].zones[0].threshold: threshold -5 is not above zero",
            id="zone-threshold",
        ),
        pytest.param(
            lambda data: data["alerts"][0].update(threshold=None),
            "alerts[0].threshold: expected a number for the threshold, got null",
            id="alert-threshold",
        ),
    ],
)
def test_every_mistake_is_named_with_its_json_path(mistake, message):
    data = copy.deepcopy(small_history())
    mistake(data)
    with pytest.raises(HistoryFileError) as raised:
        history_from_json(data)
    assert str(raised.value).startswith(message)


def test_a_file_error_names_the_file_and_the_json_path(tmp_path):
    data = small_history()
    cameras(data)[0]["counts"][1] = ["2026-11-28 14:00", 3]
    path = write_json(tmp_path, data)
    with pytest.raises(HistoryFileError, match="no UTC offset") as raised:
        read_history_file(path)
    assert str(raised.value) == f'{path}: cameras[0].counts[1]: time "2026-11-28 14:00" has no UTC offset'


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b'{\n  "timezone": ,\n}', "not valid JSON: Expecting value at line 2, column 15", id="syntax"),
        pytest.param(b'{"timezone": "Caf\xe9"}', "not UTF-8 text: byte 0xe9 at offset 17", id="not-utf-8"),
        pytest.param(
            json.dumps(small_history()).replace('"threshold": 25', '"threshold": 25, "threshold": 30').encode(),
            'cameras[0]: key "threshold" given more than once',
            id="repeated-key",
        ),
    ],
)
def test_a_file_that_is_not_a_history_gets_a_clear_error(tmp_path, content, message):
    path = tmp_path / "history.json"
    path.write_bytes(content)
    with pytest.raises(HistoryFileError) as raised:
        read_history_file(path)
    assert str(raised.value).startswith(f"{path}: ")
    assert message in str(raised.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(HistoryFileError, match=r"missing\.json: cannot read the file: No such file"):
        read_history_file(tmp_path / "missing.json")


def test_a_report_from_a_file_tells_its_alert(tmp_path):
    written = write_report(None, read_history_file(write_json(tmp_path, small_history())))
    assert (
        "Gate's Stairs zone was over its threshold of 10 people for 1 hour on Sat 28 Nov, from 14:00 to 15:00, with "
        "a highest peak of 12 at 14:00; an alert was raised at 14:10, acknowledged." in written.text
    )
    assert "Kiosk was reported down from 09:00 on Sat 28 Nov to the end of the period." in written.text


def test_the_documented_example_loads_and_its_report_tells_the_alert_and_the_outage():
    written = write_report(None, read_history_file(EXAMPLE))
    assert (
        "North hall's Platform stairs zone was over its threshold of 60 people for 1 hour on Sat 13 Jun, from 17:00 "
        "to 18:00, with a highest peak of 78 at 17:00; an alert was raised at 17:23, not acknowledged." in written.text
    )
    assert "South hall was reported down from 09:00 to 11:00 on Sat 13 Jun." in written.text
