"""python manage.py calibrate_camera CAMERA_ID --frames DIR [--json]: import an operator folder as marked frames of a
camera and run the calibration job synchronously, in this process."""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError, transaction

from counting.images import ImageError
from webapp.calibration.jobs import run_calibration
from webapp.calibration.models import CalibrationJob, MarkedFrame, validate_points
from webapp.cameras.models import Camera
from webapp.ingest.uploads import UploadRejected, check_image


class Command(BaseCommand):
    help = (
        "Import DIR (images, each beside NAME.json or NAME.csv with its head points in pixels) as marked frames of the "
        "camera, then calibrate it as the Tune button does: switch to tuned weights only when the held-out error drops."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("camera", type=int, help="the camera's id")
        parser.add_argument("--frames", required=True, type=Path, help="the folder of marked images")
        parser.add_argument("--json", action="store_true", help="print one JSON object with the outcome")

    def handle(self, *args, **options) -> None:
        camera = Camera.objects.filter(pk=options["camera"]).first()
        if camera is None:
            raise CommandError(f"there is no camera {options['camera']}")
        imported = import_folder(camera, options["frames"])
        CalibrationJob.fail_lost(camera)
        try:
            job = CalibrationJob.objects.create(camera=camera, message="calibrating from the command line")
        except IntegrityError as error:
            raise CommandError(
                f"a calibration of camera {camera.pk} is already queued or running; the {len(imported)} imported "
                "frames are kept as marked frames"
            ) from error
        job = run_calibration(job.pk)
        outcome = {
            "camera": camera.pk,
            "job": job.pk,
            "status": job.status,
            "frames": job.frames,
            "imported": len(imported),
            "held_out_mae_before": job.held_out_mae_before,
            "held_out_mae_after": job.held_out_mae_after,
            "switched": job.status == CalibrationJob.Status.SWITCHED,
            "version": job.result_version.number if job.result_version else None,
            "message": job.message,
        }
        if options["json"]:
            self.stdout.write(json.dumps(outcome))
        else:
            self.stdout.write(
                f"camera {camera.pk}: imported {len(imported)} marked frames; {job.status}: {job.message}"
            )
        if job.status == CalibrationJob.Status.FAILED:
            raise CommandError(job.message)


def import_folder(camera: Camera, folder: Path) -> list[MarkedFrame]:
    """Every image of `folder` with its points as a marked frame of `camera` (marked by nobody), all or none: a bad
    file names itself and nothing is stored."""
    from counting.training.datasets import point_folder

    try:
        samples = point_folder(folder)
    except (FileNotFoundError, NotADirectoryError, ValueError, ImageError) as error:
        raise CommandError(str(error)) from error
    saved: list[MarkedFrame] = []
    try:
        with transaction.atomic():
            for sample in samples:
                data = sample.image_path.read_bytes()
                try:
                    image = check_image(
                        ContentFile(data, name=sample.image_path.name),
                        settings.CROWDSCOPE_MAX_UPLOAD_BYTES,
                        settings.CROWDSCOPE_MAX_PIXELS,
                    )
                    points = validate_points(sample.points.tolist(), image.width, image.height)
                except (UploadRejected, ValidationError) as error:
                    message = error.message if isinstance(error, UploadRejected) else error.messages[0]
                    raise CommandError(f"{sample.image_path.name}: {message}") from error
                marked = MarkedFrame(camera=camera, width=image.width, height=image.height, points=points)
                marked.image.save(f"imported.{image.extension}", ContentFile(image.data), save=False)
                saved.append(marked)
                marked.save()
    except Exception:
        for marked in saved:
            marked.image.delete(save=False)
        raise
    return saved
