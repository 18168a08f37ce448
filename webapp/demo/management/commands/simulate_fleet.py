import json as _json

from django.core.management.base import BaseCommand, CommandError

from webapp.demo.fleet import FleetRefused, simulate


class Command(BaseCommand):
    help = (
        "Write a simulated fleet's history for measuring the platform: N cameras on sites of 100, a counted frame "
        "every SECONDS for DAYS ending now (no files). A fleet with history already is extended back to DAYS. "
        'Prints {"cameras", "frames", "seconds", "database_bytes"}.'
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--cameras", type=int, required=True)
        parser.add_argument("--days", type=float, required=True, help="of history, ending now")
        parser.add_argument("--every", type=int, default=300, help="seconds between a camera's frames (300)")
        parser.add_argument("--json", action="store_true", help="one JSON line, nothing else")

    def handle(self, cameras: int, days: float, every: int, json: bool, **options) -> None:
        if cameras < 1 or days <= 0 or every < 1:
            raise CommandError("--cameras and --every must be at least 1, --days more than 0")
        try:
            history = simulate(cameras, days, every)
        except FleetRefused as error:
            raise CommandError(str(error)) from error
        figures = {
            "cameras": history.cameras,
            "frames": history.frames,
            "seconds": round(history.seconds, 1),
            "database_bytes": history.database_bytes,
        }
        if json:
            self.stdout.write(_json.dumps(figures))
        else:
            self.stdout.write(
                f"{history.cameras:,} cameras, {history.frames:,} frames written in {history.seconds:.1f} s; "
                f"database {history.database_bytes / 1e9:.2f} GB"
            )
