from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from webapp.reports.delivery import claim, deliver, open_delivery, record_failure
from webapp.reports.generation import shared_llm
from webapp.reports.models import Subscription


class Command(BaseCommand):
    help = (
        "Send the daily report emails of one day by hand (a missed day): each active subscriber with cameras gets "
        "theirs once; those already sent are skipped, those that failed are tried again."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--date", dest="day", required=True, help="the day the reports cover, YYYY-MM-DD")
        parser.add_argument("--user", action="append", default=[], help="only this user (repeatable)")

    def handle(self, day: str, user: list[str], **options) -> None:
        try:
            report_day = date.fromisoformat(day)
        except ValueError as error:
            raise CommandError(f"--date must be YYYY-MM-DD, not {day!r}") from error
        subscriptions = Subscription.objects.filter(active=True).select_related("user")
        if user:
            subscriptions = subscriptions.filter(user__username__in=user)
        failed = 0
        for subscription in subscriptions:
            name = subscription.user.get_username()
            if not subscription.chosen_cameras().exists():
                self.stdout.write(f"{name}: no cameras, nothing sent")
                continue
            delivery, _ = open_delivery(subscription, report_day)
            claimed = claim(delivery.pk, timezone.now(), retry_failed=True)
            if claimed is None:
                delivery.refresh_from_db()
                self.stdout.write(f"{name}: {delivery.status} already, not sent again")
                continue
            try:
                deliver(claimed, shared_llm)
            except Exception as error:
                record_failure(claimed, error, final=True)
                self.stderr.write(f"{name}: failed: {type(error).__name__}: {error}")
                failed += 1
                continue
            self.stdout.write(f"{name}: sent to {subscription.user.email}")
        if failed:
            raise CommandError(f"{failed} email(s) failed; see the deliveries in the admin")
