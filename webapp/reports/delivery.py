"""Daily report emails: which are due, claiming one so that a single attempt runs at a time, and sending it.

Exactly one email per subscriber and day: the delivery row is unique per (subscription, day), a sent one is never
sent again, and an attempt first claims its row (pending -> sending). A claim that a dead worker left behind
lapses after SENDING_LEASE, and the next dispatch sends the delivery again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from llm_reports.llm import LocalLLM
from webapp.cameras.models import Camera
from webapp.reports.emails import report_email
from webapp.reports.generation import create_report, generate
from webapp.reports.history import day_period
from webapp.reports.models import Delivery, Report, Subscription

# Longer than writing a report takes, so a running attempt is never taken for a dead one.
SENDING_LEASE = timedelta(minutes=20)
# Longer than the longest back-off between retries: a pending delivery older than this lost its task.
LOST_AFTER = timedelta(minutes=30)


def open_delivery(subscription: Subscription, day: date) -> tuple[Delivery, bool]:
    """The subscription's delivery for `day`, made if missing; True when this call made it."""
    try:
        with transaction.atomic():
            return Delivery.objects.get_or_create(subscription=subscription, day=day)
    except IntegrityError:  # made at the same moment by another dispatcher
        return Delivery.objects.get(subscription=subscription, day=day), False


def due_deliveries(now: datetime) -> list[Delivery]:
    """Open the deliveries that fell due (each subscriber's previous local day, once their send time has passed) and
    return them with those whose attempt was lost. A subscriber with no cameras gets nothing."""
    to_send = []
    for subscription in Subscription.objects.filter(active=True):
        day = subscription.day_due(now)
        if day is None or not subscription.report_cameras():
            continue
        delivery, made = open_delivery(subscription, day)
        if made:
            to_send.append(delivery)
    lost = Delivery.objects.filter(
        Q(status=Delivery.Status.PENDING, created_at__lt=now - LOST_AFTER)
        & (Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - LOST_AFTER))
        | Q(status=Delivery.Status.SENDING, claimed_at__lt=now - SENDING_LEASE)
    )
    return to_send + list(lost)


def claim(delivery_id: int, now: datetime, retry_failed: bool = False) -> Delivery | None:
    """Take the delivery for one attempt; None when it is sent, or another attempt holds it (or it failed for good,
    unless `retry_failed`)."""
    claimable = Q(status=Delivery.Status.PENDING) | Q(
        status=Delivery.Status.SENDING, claimed_at__lt=now - SENDING_LEASE
    )
    if retry_failed:
        claimable |= Q(status=Delivery.Status.FAILED)
    taken = Delivery.objects.filter(claimable, pk=delivery_id).update(
        status=Delivery.Status.SENDING, claimed_at=now, attempts=F("attempts") + 1
    )
    return Delivery.objects.select_related("subscription__user").get(pk=delivery_id) if taken else None


def report_for(day: date, cameras: list[Camera], zone: str, llm: Callable[[], LocalLLM]) -> Report:
    """A written report of these cameras for the local day: one already written, or a new one."""
    start, end = day_period(day, zone)
    wanted = {camera.pk for camera in cameras}
    written = Report.objects.filter(status=Report.Status.DONE, period_start=start, period_end=end, timezone=zone)
    for report in written.prefetch_related("cameras").order_by("-created_at"):
        if {camera.pk for camera in report.cameras.all()} == wanted:
            return report
    return generate(create_report(day, cameras, zone), llm())


class CannotDeliver(ValueError):
    """Nothing to retry: the subscription itself cannot be delivered (no address, no cameras)."""


def deliver(delivery: Delivery, llm: Callable[[], LocalLLM]) -> None:
    """Write (or reuse) the report, send the email and record it. Errors propagate; the caller records them."""
    subscription = delivery.subscription
    recipient = subscription.user.email
    if not recipient:
        raise CannotDeliver(f"{subscription.user} has no email address")
    cameras = subscription.report_cameras()
    if not cameras:
        raise CannotDeliver(f"{subscription.user} subscribes to no camera")
    report = report_for(delivery.day, cameras, subscription.timezone, llm)
    message = report_email(report, cameras, recipient, subscription.timezone)
    message.send()
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.Status.SENT,
        sent_at=timezone.now(),
        report=report,
        recipient=recipient,
        message_id=message.extra_headers["Message-ID"],
        error="",
    )


def record_failure(delivery: Delivery, error: Exception, final: bool) -> None:
    """Keep why it failed; pending again for the next retry, or failed for good."""
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.Status.FAILED if final else Delivery.Status.PENDING,
        error=f"{type(error).__name__}: {error}",
        claimed_at=timezone.now(),
    )
