from datetime import date

from django.core.management.base import BaseCommand, CommandError

from webapp.cameras.models import Camera
from webapp.reports.generation import generate, shared_llm
from webapp.reports.pending import create_report


class Command(BaseCommand):
    help = "Write the LLM report of one local day (in this process) and print it with its compression figures."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--period", required=True, metavar="YYYY-MM-DD", help="the local day to report on")
        parser.add_argument("--camera", type=int, action="append", metavar="CAMERA_ID", help="default: every camera")
        parser.add_argument("--timezone", help="IANA name; default: the TIME_ZONE setting")

    def handle(self, period: str, camera: list[int] | None, timezone: str | None, **options) -> None:
        try:
            day = date.fromisoformat(period)
        except ValueError as error:
            raise CommandError(f"--period must be a date like 2026-11-28, not {period!r}") from error
        cameras = list(Camera.objects.filter(pk__in=camera)) if camera else list(Camera.objects.all())
        if camera and len(cameras) != len(set(camera)):
            raise CommandError(f"no camera with id {sorted(set(camera) - {c.pk for c in cameras})}")
        if not cameras:
            raise CommandError("there are no cameras to report on")
        report = create_report(day, cameras, timezone)
        report = generate(report, shared_llm())
        self.stdout.write(report.text)
        self.stderr.write(
            f"report {report.pk}: {report.prompt_tokens} prompt tokens kept as {report.kept_tokens}, "
            f"prefill {report.prefill_seconds:.1f} s, decoding {report.decode_tokens_per_second:.1f} tokens/s, "
            f"KV cache {report.kv_cache_mb:.1f} MB; {len(report.told)} sentences told "
            f"({sum(sentence['chosen_by_model'] for sentence in report.told)} chosen by the model) "
            f"from {len(report.events)} facts"
        )
