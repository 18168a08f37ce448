from django.core.management.base import BaseCommand
from django.utils import timezone

from webapp.ingest.retention import EXPIRING, delete_expired_files


class Command(BaseCommand):
    help = (
        "Delete frame images, heatmaps and density maps of frames older than their CROWDSCOPE_KEEP_*_DAYS settings "
        "(the beat runs this daily) and say how much was freed; rows and counts stay."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="only count what would be deleted")

    def handle(self, dry_run: bool, **options) -> None:
        freed = list(delete_expired_files(timezone.now(), dry_run=dry_run))
        if not freed:
            settings_named = ", ".join(kind.setting for kind in EXPIRING)
            self.stdout.write(f"nothing expires: {settings_named} are all 0 (keep for ever)")
        for each in freed:
            self.stdout.write(f"{'would free' if dry_run else 'freed'}: {each}")
