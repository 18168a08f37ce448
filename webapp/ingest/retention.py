"""Retention by age, run daily by the beat (`manage.py expire_by_age`), each step telling what it freed.

- Rows: frames captured longer ago than CROWDSCOPE_KEEP_FRAME_ROWS_DAYS are deleted with their results, zone counts
  and files (on PostgreSQL, whole days as partitions dropped); their counts stay in the quarter-hour counts per
  camera and zone (`QuarterHourCount`, kept as frames are counted), which series of 15 minutes and longer, reports
  and CSV read, and alerts stay.
- Files: the frame images, heatmaps and density maps of frames older than each kind's setting are deleted while the
  rows stay; the API answers 404 for a file no longer kept.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q, QuerySet
from django.db.models.fields.files import FieldFile

from webapp.ingest import partitions
from webapp.ingest.models import Frame, LatestCount, Result
from webapp.ingest.storage import delete_media_files

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
    ExpiredKind("heatmaps", Result, "heatmap", "captured_at", "CROWDSCOPE_KEEP_HEATMAPS_DAYS"),
    ExpiredKind("density maps", Result, "density", "captured_at", "CROWDSCOPE_KEEP_DENSITY_MAPS_DAYS"),
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
class ExpiredRows:
    days: int
    frames: int
    whole_days: int  # of them, in day partitions dropped whole (PostgreSQL)
    files: int
    bytes: int

    def __str__(self) -> str:
        return (
            f"frame rows older than {self.days} days: {self.frames:,} frames deleted ({self.whole_days:,} whole days "
            f"dropped), {self.files:,} files, {self.bytes / 1e6:,.1f} MB freed"
        )


def expire_by_age(now: datetime, dry_run: bool = False) -> Iterator[ExpiredRows | Freed]:
    """Every retention step, rows first (their files go with them); with `dry_run`, only count. The days ahead get
    their partitions first (`webapp.ingest.partitions`), as this runs daily."""
    if not dry_run:
        partitions.prepare_days(now)
    if expired := expire_rows(now, dry_run):
        yield expired
    yield from delete_expired_files(now, dry_run)


def _sizes(files: Iterable[FieldFile]) -> int:
    size = 0
    for file in files:
        with suppress(FileNotFoundError):  # gone already: nothing to free
            size += file.size
    return size


def _stored_files(frames: QuerySet[Frame]) -> list[FieldFile]:
    files = []
    for frame in frames.select_related("result").only("image", "result__density", "result__heatmap"):
        files.append(frame.image)
        result = getattr(frame, "result", None)
        if result is not None:
            files += [result.heatmap, result.density]
    return [file for file in files if file]


def _forget_frames(frames: QuerySet[Frame]) -> None:
    """What the database no longer ties to frames (partitions have no foreign keys) is let go of as Django's
    `on_delete` says: alerts and markings lose their frame, and a camera whose latest count goes has none."""
    ids = frames.values("pk")
    for relation in Frame._meta.related_objects:
        if relation.on_delete is models.SET_NULL:
            relation.related_model.objects.filter(**{f"{relation.field.name}__in": ids}).update(
                **{relation.field.name: None}
            )
    LatestCount.objects.filter(frame_id__in=ids).delete()


def expire_rows(now: datetime, dry_run: bool = False) -> ExpiredRows | None:
    """Delete the frames captured more than CROWDSCOPE_KEEP_FRAME_ROWS_DAYS ago, with their results, zone counts and
    files; their counts stay in the quarter hours (`webapp.ingest.rollups`, kept as they were counted) and alerts
    stay, without their frame. None when rows are kept for ever (setting 0). With `dry_run`, only count.

    On PostgreSQL each whole day past the limit goes as its three partitions, dropped in one transaction; the rest
    (SQLite, the default partition, the limit's own day) goes in batches, each in a transaction of its own. Files go
    after the commit: a crash in between leaves files no row names, never the reverse."""
    days = settings.CROWDSCOPE_KEEP_FRAME_ROWS_DAYS
    if not days:
        return None
    before = now - timedelta(days=days)
    frames = files = freed = whole_days = 0
    in_whole_days = Q(pk__in=[])  # what a dry run counted by the day already
    for day in partitions.expired_days(before):
        start, end = partitions.day_bounds(day)
        in_whole_days |= Q(captured_at__gte=start, captured_at__lt=end)
        with transaction.atomic():
            expired = Frame.objects.filter(captured_at__gte=start, captured_at__lt=end)
            stored, in_day = _stored_files(expired), expired.count()
            if not dry_run:
                _forget_frames(expired)
                partitions.drop_day(day)
        frames, files, freed, whole_days = frames + in_day, files + len(stored), freed + _sizes(stored), whole_days + 1
        if not dry_run:
            delete_media_files(stored)
    last = 0
    while True:
        with transaction.atomic():
            batch = Frame.objects.filter(captured_at__lt=before, pk__gt=last).exclude(in_whole_days).order_by("pk")
            ids = list((batch if dry_run else batch.select_for_update()).values_list("pk", flat=True)[:BATCH])
            if not ids:
                break
            expired = Frame.objects.filter(pk__in=ids)
            stored = _stored_files(expired)
            if not dry_run:
                _forget_frames(expired)
                expired.delete()
        last, frames, files, freed = ids[-1], frames + len(ids), files + len(stored), freed + _sizes(stored)
        if not dry_run:
            delete_media_files(stored)
    result = ExpiredRows(days, frames, whole_days, files, freed)
    log.info("%s", result)
    return result


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
            delete_media_files(stored)
        result = Freed(kind.name, days, files, freed)
        log.info("%s", result)
        yield result
