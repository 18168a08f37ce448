from django.core.management.base import BaseCommand
from django.utils import timezone

from webapp.ingest.retention import expire_by_age


class Command(BaseCommand):
    help = (
        "Retention by age (the beat runs this daily): make the coming days' partitions, delete frame rows older "
        "than CROWDSCOPE_KEEP_FRAME_ROWS_DAYS with their files (their counts stay in quarter hours), then the files "
        "of frames older than CROWDSCOPE_KEEP_{FRAME_IMAGES,HEATMAPS,DENSITY_MAPS}_DAYS; say what each step freed."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="only count what would be deleted")

    def handle(self, dry_run: bool, **options) -> None:
        freed = list(expire_by_age(timezone.now(), dry_run=dry_run))
        if not freed:
            self.stdout.write("nothing expires: every CROWDSCOPE_KEEP_*_DAYS setting is 0 (keep for ever)")
        for each in freed:
            self.stdout.write(f"{'would free' if dry_run else 'freed'}: {each}")
