"""Retention of files by age against the real database and media storage: old frames lose their files, never their
counts."""

from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils import timezone

from tests.factories import queued_frame
from tests.stored_media import stored_files
from webapp.ingest.models import Frame
from workers.tasks import count_frame, expire_by_age

pytestmark = pytest.mark.django_db


def counted_frame(camera, data: bytes, days_ago: float) -> Frame:
    frame = queued_frame(camera, data, captured_at=timezone.now() - timedelta(days=days_ago))
    count_frame.apply(args=[frame.pk]).get()
    frame.refresh_from_db()
    assert frame.status == Frame.Status.DONE
    return frame


def test_files_past_their_age_are_deleted_and_their_counts_kept(camera, small_jpeg_bytes, settings, api, capsys):
    settings.CROWDSCOPE_KEEP_FRAME_ROWS_DAYS = 0  # rows for ever: tests/webapp/test_retention_rows.py folds them
    settings.CROWDSCOPE_KEEP_FRAME_IMAGES_DAYS = 30
    settings.CROWDSCOPE_KEEP_HEATMAPS_DAYS = 60
    settings.CROWDSCOPE_KEEP_DENSITY_MAPS_DAYS = 0  # for ever
    old, older, recent = (counted_frame(camera, small_jpeg_bytes, days) for days in (45, 90, 5))
    count_before = older.result.count
    old_image, older_heatmap = old.image.name, older.result.heatmap.name
    files_before = stored_files()
    image_bytes = sum(default_storage.size(frame.image.name) for frame in (old, older))

    call_command("expire_by_age", "--dry-run")
    assert stored_files() == files_before
    assert "would free: frame images older than 30 days: 2 files" in capsys.readouterr().out

    call_command("expire_by_age")
    said = capsys.readouterr().out
    assert f"freed: frame images older than 30 days: 2 files, {image_bytes / 1e6:,.1f} MB freed" in said
    assert "freed: heatmaps older than 60 days: 1 files" in said
    assert "density maps" not in said
    for frame in (old, older, recent):
        frame.refresh_from_db()
    assert not old.image and not older.image and recent.image
    assert not default_storage.exists(old_image) and not default_storage.exists(older_heatmap)
    assert old.result.heatmap and not older.result.heatmap and older.result.density
    assert older.result.count == count_before and older.status == Frame.Status.DONE
    assert len(stored_files()) == len(files_before) - 3

    # What is gone is a clear 404; what is kept still answers.
    assert api.get(f"/api/v1/frames/{older.pk}/image").status_code == 404
    assert "not kept" in api.get(f"/api/v1/frames/{older.pk}/heatmap.png").json()["detail"]
    assert api.get(f"/api/v1/frames/{older.pk}/density.json").status_code == 200
    body = api.get(f"/api/v1/frames/{older.pk}/").json()
    assert body["count"] == pytest.approx(count_before)
    assert body["links"]["image"] is None and body["links"]["heatmap"] is None and body["links"]["density"]

    assert expire_by_age.apply().get() == [
        "frame images older than 30 days: 0 files, 0.0 MB freed",
        "heatmaps older than 60 days: 0 files, 0.0 MB freed",
    ]


def test_a_density_map_no_longer_kept_is_a_404_not_an_error(camera, small_jpeg_bytes, settings, api):
    settings.CROWDSCOPE_KEEP_FRAME_ROWS_DAYS = settings.CROWDSCOPE_KEEP_FRAME_IMAGES_DAYS = 0
    settings.CROWDSCOPE_KEEP_HEATMAPS_DAYS = 0
    settings.CROWDSCOPE_KEEP_DENSITY_MAPS_DAYS = 10
    frame = counted_frame(camera, small_jpeg_bytes, 20)
    call_command("expire_by_age")
    for path in ("density.json", "density.npz"):
        response = api.get(f"/api/v1/frames/{frame.pk}/{path}")
        assert response.status_code == 404 and "not kept" in response.json()["detail"]
