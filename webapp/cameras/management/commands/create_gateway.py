from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from webapp.cameras.models import Camera, Gateway


class Command(BaseCommand):
    help = "Create a gateway for some cameras and print its API token (shown once: only its hash is stored)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument(
            "--camera",
            type=int,
            action="append",
            required=True,
            metavar="CAMERA_ID",
            help="a camera this gateway uploads for; repeat for several",
        )

    def handle(self, name: str, camera: list[int], **options) -> None:
        cameras = list(Camera.objects.filter(pk__in=camera))
        missing = sorted(set(camera) - {found.pk for found in cameras})
        if missing:
            raise CommandError(f"no camera with id {', '.join(map(str, missing))}")
        if Gateway.objects.filter(name=name).exists():
            raise CommandError(f"a gateway named {name!r} exists already")
        with transaction.atomic():
            gateway = Gateway(name=name)
            token = gateway.issue_secret()
            gateway.save()
            gateway.cameras.set(cameras)
        self.stdout.write(token)
        self.stderr.write(f"gateway {name!r} (id {gateway.pk}) for cameras {', '.join(str(c.pk) for c in cameras)}")
