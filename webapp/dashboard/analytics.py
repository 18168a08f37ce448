"""A site's analytics: each camera's usual level by local weekday and hour, the cameras compared over a range, the
site's busiest hours, and a forecast of the next hours with its error measured on held-out days.

Everything is built from hourly means on the site's clock (`hourly_means`, from the quarter-hour counts) of the hours
complete when the local hour under way began: the figures change only as hours complete, so they read the same whenever
in the hour they are computed, and are computed once a site and hour (`webapp.dashboard.site_figures` keeps them). The
forecast is seasonal: an hour's forecast is the median of the same local weekday and hour over the `USUAL_WEEKS` weeks
before it, as the reports and unusual-level alerts take a camera's usual level; its error is measured on the last
`HELD_OUT_DAYS` days, each hour forecast only from the weeks before it.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from webapp.cameras.models import Camera
from webapp.ingest.usual import HOUR, USUAL_WEEKS, hourly_means, usual_level

HELD_OUT_DAYS = 7
# The ranges the site page compares its cameras over, in days: the figures of every one are computed together.
COMPARE_DAYS = (1, 7, 28)
FORECAST_HOURS = 6
BUSIEST_HOURS = 5
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def usual_grid(means: dict[datetime, float]) -> list[list[float | None]]:
    """7 x 24 (Monday first): the median hourly mean of each local weekday and hour over `means`."""
    cells: dict[tuple[int, int], list[float]] = defaultdict(list)
    for hour, mean in means.items():
        cells[hour.weekday(), hour.hour].append(mean)
    return [
        [round(statistics.median(cells[day, hour]), 1) if cells[day, hour] else None for hour in range(24)]
        for day in range(7)
    ]


@dataclass(frozen=True)
class ForecastError:
    mae: float | None  # None when no held-out hour had a forecast
    hours: int
    mean_level: float | None  # the actual mean over those hours, to read the error against


def held_out_error(means: dict[datetime, float], now: datetime) -> ForecastError:
    """The seasonal forecast's mean absolute error on the hours of the last `HELD_OUT_DAYS` days complete by `now`
    that were counted and had a usual level from the weeks before them."""
    cutoff = now - timedelta(days=HELD_OUT_DAYS)
    pairs = [
        (mean, forecast)
        for hour, mean in means.items()
        if cutoff <= hour and hour + HOUR <= now and (forecast := usual_level(means, hour)) is not None
    ]
    if not pairs:
        return ForecastError(None, 0, None)
    return ForecastError(
        round(statistics.fmean(abs(actual - forecast) for actual, forecast in pairs), 2),
        len(pairs),
        round(statistics.fmean(actual for actual, _ in pairs), 1),
    )


def forecast(means: dict[datetime, float], now: datetime, zone: ZoneInfo) -> list[tuple[datetime, float | None]]:
    """The next `FORECAST_HOURS` local hours from the one under way, each with its seasonal forecast (or None)."""
    first = now.astimezone(zone).replace(minute=0, second=0, microsecond=0)
    return [(hour, usual_level(means, hour)) for hour in (first + step * HOUR for step in range(FORECAST_HOURS))]


def busiest_hours(grids: list[list[list[float | None]]]) -> list[dict]:
    """The site's busiest local weekday-hours: the cameras' usual levels summed, highest first."""
    totals = [
        (sum(grid[day][hour] or 0.0 for grid in grids), day, hour)
        for day in range(7)
        for hour in range(24)
        if any(grid[day][hour] is not None for grid in grids)
    ]
    return [
        {"weekday": WEEKDAYS[day], "hour": f"{hour:02d}:00-{(hour + 1) % 24:02d}:00", "people": round(total, 1)}
        for total, day, hour in sorted(totals, key=lambda row: (-row[0], row[1], row[2]))[:BUSIEST_HOURS]
    ]


def wall(moment: datetime) -> str:
    """A time as plotly reads it: the site's wall clock, whatever the browser's zone."""
    return f"{moment:%Y-%m-%d %H:%M}"


def local_hour_start(now: datetime, zone: ZoneInfo) -> datetime:
    """The start of the hour under way at `now` on the clock of `zone`."""
    return now.astimezone(zone).replace(minute=0, second=0, microsecond=0)


def site_analytics_by_compare_days(
    cameras: list[Camera], zone: ZoneInfo, now: datetime, compare_days: Sequence[int]
) -> dict[int, dict]:
    """The site page's figures, as JSON for its charts, for each range of `compare_days` (days -> figures): the hours
    complete at the start of `now`'s local hour, read once for every range."""
    as_of = local_hour_start(now, zone)
    means = hourly_means(cameras, as_of - timedelta(weeks=USUAL_WEEKS, days=HELD_OUT_DAYS), as_of, zone)
    usual_from = as_of - timedelta(weeks=USUAL_WEEKS)
    compare_from = {days: as_of - timedelta(days=days) for days in compare_days}
    rows: dict[int, list[dict]] = {days: [] for days in compare_days}
    grids = []
    for camera in cameras:
        camera_means = means.get(camera.pk, {})
        grid = usual_grid({hour: mean for hour, mean in camera_means.items() if hour >= usual_from})
        grids.append(grid)
        ahead = forecast(camera_means, as_of, zone)
        error = held_out_error(camera_means, as_of)
        shared = {
            "id": camera.pk,
            "name": camera.name,
            "usual": grid,
            "forecast": {"x": [wall(hour) for hour, _ in ahead], "y": [v and round(v, 1) for _, v in ahead]},
            "error": {"mae": error.mae, "hours": error.hours, "mean_level": error.mean_level},
        }
        for days, start in compare_from.items():
            compared = [(hour, mean) for hour, mean in camera_means.items() if hour >= start]
            compare = {"x": [wall(hour) for hour, _ in compared], "y": [round(m, 1) for _, m in compared]}
            rows[days].append({**shared, "compare": compare})
    busiest = busiest_hours(grids)
    return {days: {"weekdays": WEEKDAYS, "cameras": rows[days], "busiest": busiest} for days in compare_days}


def site_analytics(cameras: list[Camera], zone: ZoneInfo, now: datetime, compare_days: int) -> dict:
    """The site page's figures for one range of `compare_days` (see `site_analytics_by_compare_days`)."""
    return site_analytics_by_compare_days(cameras, zone, now, [compare_days])[compare_days]
