"""A report's history from a plain JSON file (`python -m llm_reports write HISTORY.json`), format in
docs/history-file.md.

The file gives each camera's and zone's counts as per-frame (time, people) points; the loader buckets them the way
webapp's database history does: buckets aligned to the clock of the history's time zone, one per bucket that had
frames, oldest first, each camera's series followed by its zones' series. Points at or after the period's end are
ignored, as the database history stops there. Everything is validated before anything is used, and every problem is
a `HistoryFileError` that names where in the file it is, for example
`cameras[1].counts[17]: time "2026-11-28 14:00" has no UTC offset`.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from llm_reports.history import AlertRecord, Bucket, History, Outage, Series

DEFAULT_BUCKET_MINUTES = 60
MINUTES_PER_DAY = 24 * 60


class HistoryFileError(ValueError):
    """A history file that cannot be read or does not follow the format. The message reads
    "[file: ][json path: ]problem"; the parts are kept as `file`, `json_path` and `problem`."""

    def __init__(self, problem: str, json_path: str = "", file: str = "") -> None:
        self.problem, self.json_path, self.file = problem, json_path, file
        super().__init__(": ".join(part for part in (file, json_path, problem) if part))


def read_history_file(path: str | Path) -> History:
    """The history in the UTF-8 JSON file at `path` (a byte order mark is allowed); a `HistoryFileError` naming
    the file when it cannot be read, is not JSON (with the line and column) or does not follow the format."""
    file = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except OSError as error:
        raise HistoryFileError(f"cannot read the file: {error.strerror}", file=file) from None
    except UnicodeDecodeError as error:
        problem = f"not UTF-8 text: byte 0x{error.object[error.start]:02x} at offset {error.start}"
        raise HistoryFileError(problem, file=file) from None
    try:
        data = json.loads(text, object_pairs_hook=_JSONObject.from_pairs)
    except json.JSONDecodeError as error:
        problem = f"not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
        raise HistoryFileError(problem, file=file) from None
    try:
        return history_from_json(data)
    except HistoryFileError as error:
        raise HistoryFileError(error.problem, error.json_path, file) from None


def history_from_json(data: object) -> History:
    """The history that parsed JSON `data` describes, validated whole; a `HistoryFileError` with the JSON path of
    the first problem found otherwise."""
    top = _object(
        data, "", required=("period", "timezone", "cameras"), optional=("bucket_minutes", "alerts", "outages")
    )
    zone_info = _time_zone(top["timezone"], "timezone")
    clock = _Clock(zone_info, _bucket_minutes(_given(top, "bucket_minutes", DEFAULT_BUCKET_MINUTES), "bucket_minutes"))
    period_start, period_end = _period(top["period"], "period", clock)

    series: list[Series] = []
    sites: dict[str, str] = {}
    zones_of: dict[str, list[str]] = {}
    for index, camera in enumerate(_array(top["cameras"], "cameras", non_empty=True)):
        path = f"cameras[{index}]"
        camera_series, site = _camera(camera, path, clock, period_end)
        name = camera_series[0].camera
        if name in zones_of:
            raise HistoryFileError(f'another camera is already named "{name}"', f"{path}.name")
        zones_of[name] = [zone_series.zone for zone_series in camera_series[1:] if zone_series.zone is not None]
        series += camera_series
        if site is not None:
            sites[name] = site

    return History(
        period_start=period_start,
        period_end=period_end,
        timezone=zone_info.key,
        bucket_minutes=clock.minutes,
        series=series,
        alerts=[
            _alert(alert, f"alerts[{index}]", zones_of)
            for index, alert in enumerate(_array(_given(top, "alerts", []), "alerts"))
        ],
        sites=sites,
        outages=[
            _outage(outage, f"outages[{index}]", zones_of)
            for index, outage in enumerate(_array(_given(top, "outages", []), "outages"))
        ],
    )


class _JSONObject(dict):
    """A JSON object as parsed, with the keys it gave more than once: json keeps only the last value of a repeated
    key, which would silently drop counts, so `_object` reports them instead."""

    repeated: tuple[str, ...] = ()

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, object]]) -> _JSONObject:
        parsed = cls(pairs)
        if len(parsed) < len(pairs):
            keys = [key for key, _ in pairs]
            parsed.repeated = tuple(dict.fromkeys(key for key in keys if keys.count(key) > 1))
        return parsed


class _Clock:
    """The history's time zone and bucket length: where each moment's bucket starts."""

    def __init__(self, zone_info: ZoneInfo, minutes: int) -> None:
        self.zone_info, self.minutes = zone_info, minutes

    def bucket_start(self, moment: datetime) -> datetime:
        """The UTC start of the bucket holding `moment`: the local time floored to a multiple of the bucket length
        since local midnight. replace() keeps `fold`, so the hour that repeats when the clocks go back stays two
        buckets; UTC keeps them apart when compared (equal local times compare equal whatever their fold)."""
        local = moment.astimezone(self.zone_info)
        minute_of_day = local.hour * 60 + local.minute
        floored = minute_of_day - minute_of_day % self.minutes
        return local.replace(hour=floored // 60, minute=floored % 60, second=0, microsecond=0).astimezone(UTC)


def _camera(value: object, path: str, clock: _Clock, period_end: datetime) -> tuple[list[Series], str | None]:
    """The camera's series then its zones' (in the file's order), and its site."""
    camera = _object(value, path, required=("name", "counts"), optional=("site", "threshold", "zones"))
    name = _name(camera["name"], f"{path}.name")
    site = _name(camera["site"], f"{path}.site") if camera.get("site") is not None else None
    series = [
        Series(
            camera=name,
            zone=None,
            threshold=_threshold(camera.get("threshold"), f"{path}.threshold"),
            buckets=_buckets(camera["counts"], f"{path}.counts", clock, period_end),
        )
    ]
    for index, zone_value in enumerate(_array(_given(camera, "zones", []), f"{path}.zones")):
        zone_path = f"{path}.zones[{index}]"
        zone = _object(zone_value, zone_path, required=("name", "counts"), optional=("threshold",))
        zone_name = _name(zone["name"], f"{zone_path}.name")
        if any(earlier.zone == zone_name for earlier in series):
            raise HistoryFileError(f'camera "{name}" already has a zone named "{zone_name}"', f"{zone_path}.name")
        series.append(
            Series(
                camera=name,
                zone=zone_name,
                threshold=_threshold(zone.get("threshold"), f"{zone_path}.threshold"),
                buckets=_buckets(zone["counts"], f"{zone_path}.counts", clock, period_end),
            )
        )
    return series, site


def _buckets(value: object, path: str, clock: _Clock, period_end: datetime) -> list[Bucket]:
    """Per-frame [time, people] points as buckets, oldest first; points at or after `period_end` are validated,
    then left out."""
    frames: dict[datetime, list[float]] = defaultdict(list)
    for index, point in enumerate(_array(value, path)):
        point_path = f"{path}[{index}]"
        if not isinstance(point, list) or len(point) != 2:
            raise HistoryFileError(f"expected a [time, people] pair, got {_describe(point)}", point_path)
        moment = _time(point[0], point_path)
        count = _count(point[1], point_path)
        if moment < period_end:
            frames[clock.bucket_start(moment)].append(count)
    return [
        Bucket(start=start, mean=sum(counts) / len(counts), peak=max(counts), frames=len(counts))
        for start, counts in sorted(frames.items())
    ]


def _alert(value: object, path: str, zones_of: dict[str, list[str]]) -> AlertRecord:
    alert = _object(
        value, path, required=("camera", "raised_at", "count", "threshold"), optional=("zone", "acknowledged")
    )
    camera = _known_camera(alert["camera"], f"{path}.camera", zones_of)
    zone = None
    if alert.get("zone") is not None:
        zone = _name(alert["zone"], f"{path}.zone")
        if zone not in zones_of[camera]:
            zones = f"its zones: {', '.join(zones_of[camera])}" if zones_of[camera] else "it has no zones"
            raise HistoryFileError(f'camera "{camera}" has no zone "{zone}" ({zones})', f"{path}.zone")
    acknowledged = _given(alert, "acknowledged", False)
    if not isinstance(acknowledged, bool):
        raise HistoryFileError(f"expected true or false, got {_describe(acknowledged)}", f"{path}.acknowledged")
    return AlertRecord(
        camera=camera,
        zone=zone,
        raised_at=_time(alert["raised_at"], f"{path}.raised_at"),
        count=_count(alert["count"], f"{path}.count"),
        threshold=_required_threshold(alert["threshold"], f"{path}.threshold"),
        acknowledged=acknowledged,
    )


def _outage(value: object, path: str, zones_of: dict[str, list[str]]) -> Outage:
    outage = _object(value, path, required=("camera", "start"), optional=("end",))
    camera = _known_camera(outage["camera"], f"{path}.camera", zones_of)
    start = _time(outage["start"], f"{path}.start")
    end = _time(outage["end"], f"{path}.end") if outage.get("end") is not None else None
    if end is not None and end <= start:
        raise HistoryFileError(f"{end.isoformat()} is not after the start, {start.isoformat()}", f"{path}.end")
    return Outage(camera=camera, start=start, end=end)


def _period(value: object, path: str, clock: _Clock) -> tuple[datetime, datetime]:
    """[start, end), each on a bucket boundary: the events step through the period's buckets from its start."""
    period = _object(value, path, required=("start", "end"))
    start, end = _time(period["start"], f"{path}.start"), _time(period["end"], f"{path}.end")
    for moment, name in ((start, "start"), (end, "end")):
        if clock.bucket_start(moment) != moment:
            local = moment.astimezone(clock.zone_info).time()
            shown = f"{local:%H:%M}" if local.second == local.microsecond == 0 else local.isoformat()
            raise HistoryFileError(
                f"{shown} in {clock.zone_info.key} is not on a {clock.minutes}-minute bucket boundary",
                f"{path}.{name}",
            )
    if end <= start:
        raise HistoryFileError(f"{end.isoformat()} is not after the start, {start.isoformat()}", f"{path}.end")
    return start, end


def _time_zone(value: object, path: str) -> ZoneInfo:
    name = _name(value, path)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise HistoryFileError(f'unknown time zone "{name}" (an IANA name, such as "Europe/Paris")', path) from None


def _bucket_minutes(value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise HistoryFileError(f"expected a whole number of minutes, got {_describe(value)}", path)
    if value <= 0 or MINUTES_PER_DAY % value:
        raise HistoryFileError(f"{value} does not divide a day ({MINUTES_PER_DAY} minutes) into buckets", path)
    return value


def _known_camera(value: object, path: str, zones_of: dict[str, list[str]]) -> str:
    camera = _name(value, path)
    if camera not in zones_of:
        raise HistoryFileError(f'no camera named "{camera}" in cameras (known: {", ".join(zones_of)})', path)
    return camera


def _object(value: object, path: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    if not isinstance(value, dict):
        raise HistoryFileError(f"expected an object, got {_describe(value)}", path)
    known = (*required, *optional)
    problems = []
    if repeated := getattr(value, "repeated", ()):
        problems.append(f"{_keys(repeated)} given more than once")
    if unknown := [key for key in value if key not in known]:
        problems.append(f"unknown {_keys(unknown)}")
    if missing := [key for key in required if key not in value]:
        problems.append(f"missing {_keys(missing)}")
    if problems:
        raise HistoryFileError(f"{'; '.join(problems)} (known keys: {', '.join(known)})", path)
    return value


def _given(value: dict, key: str, default: object) -> object:
    """An optional key's value, `default` where it is absent or null."""
    given = value.get(key)
    return default if given is None else given


def _array(value: object, path: str, non_empty: bool = False) -> list:
    if not isinstance(value, list):
        raise HistoryFileError(f"expected an array, got {_describe(value)}", path)
    if non_empty and not value:
        raise HistoryFileError("expected at least one item", path)
    return value


def _name(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise HistoryFileError(f"expected a string, got {_describe(value)}", path)
    if not value.strip():
        raise HistoryFileError("must not be empty", path)
    return value


def _number(value: object, path: str, label: str) -> float:
    """A finite JSON number; `label` names it in messages ("count -3 is negative")."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise HistoryFileError(f"expected a number for the {label}, got {_describe(value)}", path)
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        number = math.inf
    if not math.isfinite(number):
        raise HistoryFileError(f"{label} {value} is not a finite number", path)
    return number


def _count(value: object, path: str) -> float:
    """People counted: a finite number, zero or more."""
    count = _number(value, path, "count")
    if count < 0:
        raise HistoryFileError(f"count {value} is negative", path)
    return count


def _threshold(value: object, path: str) -> float | None:
    """People above which a peak is over the threshold; null or absent: no threshold."""
    return None if value is None else _required_threshold(value, path)


def _required_threshold(value: object, path: str) -> float:
    """People above which a peak is over the threshold, where one must be given (an alert's)."""
    threshold = _number(value, path, "threshold")
    if threshold <= 0:
        raise HistoryFileError(f"threshold {value} is not above zero", path)
    return threshold


def _time(value: object, path: str) -> datetime:
    if not isinstance(value, str):
        raise HistoryFileError(f"expected an ISO 8601 time string, got {_describe(value)}", path)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise HistoryFileError(f'time "{value}" is not an ISO 8601 date and time', path) from None
    if moment.tzinfo is None:
        raise HistoryFileError(f'time "{value}" has no UTC offset', path)
    return moment


def _describe(value: object) -> str:
    """The JSON kind of a parsed value, for "expected ..., got a string"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    kinds = {str: "a string", int: "a number", float: "a number", list: "an array", dict: "an object"}
    return next((kind for python_type, kind in kinds.items() if isinstance(value, python_type)), type(value).__name__)


def _keys(keys: list[str] | tuple[str, ...]) -> str:
    """'key "a"' or 'keys "a", "b"'."""
    return f"key{'s' if len(keys) > 1 else ''} " + ", ".join(f'"{key}"' for key in keys)
