"""Retention by age, run daily by the beat (`manage.py expire_by_age`), each step telling what it freed.

- Rows: frames captured longer ago than CROWDSCOPE_KEEP_FRAME_ROWS_DAYS are folded into quarter-hour counts per camera
  and zone (`QuarterHourCount`), then deleted with their results, zone counts and files; series of 15 minutes and
  longer, reports and CSV read the quarter hours where the frames are gone, and alerts stay.
- Files: the frame images, heatmaps and density maps of frames older than each kind's setting are deleted while the
  rows stay; the API answers 404 for a file no longer kept.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, transaction
from django.db.models import F
from django.db.models.fields.files import FieldFile
from django.db.models.functions import Greatest

from webapp.ingest.models import Frame, QuarterHourCount, Result, ZoneCount
from webapp.ingest.series import QUARTER_HOUR, Tally, bucket_start

log = logging.getLogger(__name__)

BATCH = 500


@dataclass(frozen=True)
class ExpiredKind:
    name: str
    model: type[models.Model]
    field: str
    captured_at: str  # the lookup of the frame's capture time from `model`
    setting: str  # days to keep; 0: for ever


EXPIRING = (
    ExpiredKind("frame images", Frame, "image", "captured_at", "CROWDSCOPE_KEEP_FRAME_IMAGES_DAYS"),
    ExpiredKind("heatmaps", Result, "heatmap", "frame__captured_at", "CROWDSCOPE_KEEP_HEATMAPS_DAYS"),
    ExpiredKind("density maps", Result, "density", "frame__captured_at", "CROWDSCOPE_KEEP_DENSITY_MAPS_DAYS"),
)


@dataclass(frozen=True)
class Freed:
    kind: str
    days: int
    files: int
    bytes: int

    def __str__(self) -> str:
        return f"{self.kind} older than {self.days} days: {self.files:,} files, {self.bytes / 1e6:,.1f} MB freed"


@dataclass(frozen=True)
class Folded:
    days: int
    frames: int
    quarter_hours: int
    files: int
    bytes: int

    def __str__(self) -> str:
        return (
            f"frame rows older than {self.days} days: {self.frames:,} frames folded into {self.quarter_hours:,} "
            f"quarter-hour counts, {self.files:,} files, {self.bytes / 1e6:,.1f} MB freed"
        )


def expire_by_age(now: datetime, dry_run: bool = False) -> Iterator[Folded | Freed]:
    """Every retention step, rows first (their files go with them); with `dry_run`, only count."""
    if folded := fold_expired_rows(now, dry_run):
        yield folded
    yield from delete_expired_files(now, dry_run)


def _sizes(files: Iterable[FieldFile]) -> int:
    size = 0
    for file in files:
        with suppress(FileNotFoundError):  # gone already: nothing to free
            size += file.size
    return size


def _stored_files(frames: list[Frame]) -> list[FieldFile]:
    files = [frame.image for frame in frames]
    for frame in frames:
        result = getattr(frame, "result", None)
        if result is not None:
            files += [result.heatmap, result.density]
    return [file for file in files if file]


def _tallies(frame_ids: list[int]) -> dict[tuple[int, str, datetime], Tally]:
    """The counts of these frames by camera, zone name ("" for the whole view) and quarter hour."""
    tallies: dict[tuple[int, str, datetime], Tally] = defaultdict(Tally)
    for camera_id, captured_at, count in Result.objects.filter(frame_id__in=frame_ids).values_list(
        "frame__camera_id", "frame__captured_at", "count"
    ):
        tallies[camera_id, "", bucket_start(captured_at, QUARTER_HOUR)].add(1, count, count)
    for camera_id, captured_at, zone_name, count in ZoneCount.objects.filter(
        result__frame_id__in=frame_ids
    ).values_list("result__frame__camera_id", "result__frame__captured_at", "zone_name", "count"):
        tallies[camera_id, zone_name, bucket_start(captured_at, QUARTER_HOUR)].add(1, count, count)
    return tallies


def _add_to_quarter_hours(tallies: dict[tuple[int, str, datetime], Tally]) -> None:
    for (camera_id, zone_name, start), tally in tallies.items():
        kept = QuarterHourCount.objects.filter(camera_id=camera_id, zone_name=zone_name, start=start)
        added = kept.update(
            frames=F("frames") + tally.frames, total=F("total") + tally.total, peak=Greatest("peak", tally.peak)
        )
        if not added:
            QuarterHourCount.objects.create(camera_id=camera_id, zone_name=zone_name, start=start, **vars(tally))


def fold_expired_rows(now: datetime, dry_run: bool = False) -> Folded | None:
    """Fold frames captured before the rows' age limit (on a quarter-hour boundary) into quarter-hour counts, then
    delete them, their results, zone counts and files; alerts stay, without their frame. None when rows are kept
    for ever (setting 0). With `dry_run`, only count.

    Each batch is folded and deleted in one transaction, its frames locked first, so a count is either in a quarter
    hour or still in its frame, never in both or neither, and a second run at the same time waits, then finds them
    gone. Files go after the commit: a crash in between leaves files no row names, never the reverse."""
    days = settings.CROWDSCOPE_KEEP_FRAME_ROWS_DAYS
    if not days:
        return None
    expired = Frame.objects.filter(captured_at__lt=bucket_start(now - timedelta(days=days), QUARTER_HOUR))
    quarter_hours: set[tuple[int, str, datetime]] = set()
    frames = files = freed = last = 0
    while True:
        with transaction.atomic():
            batch = expired.filter(pk__gt=last).order_by("pk")
            ids = list((batch if dry_run else batch.select_for_update()).values_list("pk", flat=True)[:BATCH])
            if not ids:
                break
            stored = _stored_files(list(Frame.objects.filter(pk__in=ids).select_related("result")))
            tallies = _tallies(ids)
            if not dry_run:
                _add_to_quarter_hours(tallies)
                Frame.objects.filter(pk__in=ids).delete()
        last, frames, files = ids[-1], frames + len(ids), files + len(stored)
        quarter_hours.update(tallies)
        freed += _sizes(stored)
        if not dry_run:
            for file in stored:
                file.storage.delete(file.name)
    folded = Folded(days, frames, len(quarter_hours), files, freed)
    log.info("%s", folded)
    return folded


def delete_expired_files(now: datetime, dry_run: bool = False) -> Iterator[Freed]:
    """For each kind kept for a limited number of days, delete the files of frames captured before then (with
    `dry_run`, only count them). Each batch's rows are cleared before its files go, so no row ever names a deleted
    file; a crash between the two leaves files no row names, never the reverse."""
    for kind in EXPIRING:
        days = getattr(settings, kind.setting)
        if not days:
            continue
        expired = (
            kind.model.objects.filter(**{f"{kind.captured_at}__lt": now - timedelta(days=days)})
            .exclude(**{kind.field: ""})
            .order_by("pk")
        )
        files = freed = last = 0
        while batch := list(expired.filter(pk__gt=last).only("pk", kind.field)[:BATCH]):
            last = batch[-1].pk
            stored = [getattr(row, kind.field) for row in batch]
            freed += _sizes(stored)  # a file gone already frees nothing; its row is cleared all the same
            files += len(batch)
            if dry_run:
                continue
            kind.model.objects.filter(pk__in=[row.pk for row in batch]).update(**{kind.field: ""})
            for file in stored:
                file.storage.delete(file.name)
        result = Freed(kind.name, days, files, freed)
        log.info("%s", result)
        yield result
