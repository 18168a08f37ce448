"""Retention by age: the files of frames captured longer ago than each kind's setting are deleted, and how much was
freed is told. Rows stay (the frame, its count and its zone counts), so series, reports and CSV keep their history;
the API answers 404 for a file no longer kept."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models

from webapp.ingest.models import Frame, Result

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
            for file in stored:
                with suppress(FileNotFoundError):  # gone already: nothing to free, the row is cleared all the same
                    freed += file.size
            files += len(batch)
            if dry_run:
                continue
            kind.model.objects.filter(pk__in=[row.pk for row in batch]).update(**{kind.field: ""})
            for file in stored:
                file.storage.delete(file.name)
        result = Freed(kind.name, days, files, freed)
        log.info("%s", result)
        yield result
