"""python manage.py adapt_camera CAMERA_ID [--frames DIR] [--json]: adapt a camera's default weights to its own
unlabeled frames (a folder of its images, else its stored frames) by running the adaptation job synchronously, in
this process."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError

from counting.images import IMAGE_SUFFIXES
from webapp.calibration.adaptation import run_adaptation
from webapp.calibration.models import AdaptationJob
from webapp.cameras.models import Camera


class Command(BaseCommand):
    help = (
        "Adapt the camera's default weights to its own unlabeled frames (the images of DIR, all of one size, else its "
        "stored frames) as the Adapt button does: switch to the adapted weights, or keep the current ones when the "
        "weights already fit such frames; then its stored frames are queued for a recount."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("camera", type=int, help="the camera's id")
        parser.add_argument("--frames", type=Path, help="a folder of unlabeled images of the camera")
        parser.add_argument(
            "--json",
            action="store_true",
            help='print one JSON object: {"camera", "frames", "version", "mean_count_before", "mean_count_after", '
            '"switched"}',
        )

    def handle(self, *args, **options) -> None:
        camera = Camera.objects.filter(pk=options["camera"]).first()
        if camera is None:
            raise CommandError(f"there is no camera {options['camera']}")
        images = None if options["frames"] is None else folder_images(options["frames"])
        AdaptationJob.fail_lost(camera)
        try:
            job = AdaptationJob.objects.create(camera=camera, message="adapting from the command line")
        except IntegrityError as error:
            raise CommandError(f"an adaptation of camera {camera.pk} is already queued or running") from error
        job = run_adaptation(job.pk, images)
        if options["json"]:
            outcome = {
                "camera": camera.pk,
                "frames": job.frames,
                "version": job.result_version.number if job.result_version else None,
                "mean_count_before": job.mean_count_before,
                "mean_count_after": job.mean_count_after,
                "switched": job.status == AdaptationJob.Status.SWITCHED,
            }
            self.stdout.write(json.dumps(outcome))
        else:
            self.stdout.write(f"camera {camera.pk}: {job.status}: {job.message}")
        if job.status == AdaptationJob.Status.FAILED:
            raise CommandError(job.message)


def folder_images(folder: Path) -> list[Path]:
    """The image files of `folder` (by suffix, sorted by name); what is in them the library checks (count, sizes,
    readability). Raises CommandError when `folder` is not a folder."""
    if not folder.is_dir():
        raise CommandError(f"{folder} is not a folder")
    return sorted(path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)
