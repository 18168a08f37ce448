"""Daily report emails: which are due, claiming one so that a single attempt runs at a time, and sending it.

One email per subscriber and day: the delivery row is unique per (subscription, day), a sent one is never sent
again, and an attempt first claims its row (pending -> sending), then writes to it only while the claim is still its
own. A claim that a dead worker left behind lapses after SENDING_LEASE (the task's time limit is shorter), and the
next dispatch sends the delivery again. The one gap left: a worker that dies after the mail server took the message
and before the row says so; the email then goes out twice.
"""

from __future__ import annotations

import time as time_module
from collections.abc import Callable
from datetime import date, datetime, timedelta

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from llm_reports.llm import LocalLLM
from webapp.accounts.roles import role_of
from webapp.cameras.models import Camera
from webapp.metric_events import count_event
from webapp.reports.emails import report_email
from webapp.reports.generation import generate
from webapp.reports.history import day_period
from webapp.reports.models import Delivery, Report, Subscription
from webapp.reports.pending import create_report

# Longer than an attempt may run (the task's time limit), so a running attempt is never taken for a dead one.
SENDING_LEASE = timedelta(minutes=20)
# Longer than the longest back-off between retries: a pending delivery older than this lost its task.
DELIVERY_LOST_AFTER = timedelta(minutes=30)
RECORD_PAUSES = (1, 2, 4, 8, 15)  # seconds between tries to record a sent email


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
    for subscription in Subscription.objects.filter(active=True).select_related("user"):
        day = subscription.day_due(now)
        if day is None or role_of(subscription.user) is None or not subscription.report_cameras():
            continue
        delivery, made = open_delivery(subscription, day)
        if made:
            to_send.append(delivery)
    lost = Delivery.objects.filter(
        Q(status=Delivery.Status.PENDING, enqueued_at__lt=now - DELIVERY_LOST_AFTER)
        | Q(status=Delivery.Status.SENDING, claimed_at__lt=now - SENDING_LEASE)
    )
    to_send += list(lost)
    # Stamped as handed over, so that one waiting in a busy queue is not handed over again every minute.
    Delivery.objects.filter(pk__in=[delivery.pk for delivery in to_send]).update(enqueued_at=now)
    return to_send


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
    """Nothing to retry: the subscription itself cannot be delivered (no role, no address, no cameras)."""


class SentUnrecorded(RuntimeError):
    """The mail server took the message but the delivery could not be marked sent: never send it again."""


def _held(delivery: Delivery):
    """The delivery's row, only while this attempt's claim holds it."""
    return Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.SENDING, claimed_at=delivery.claimed_at)


def deliver(delivery: Delivery, llm: Callable[[], LocalLLM]) -> None:
    """Write (or reuse) the report, send the email and record it. Errors before the send propagate for the caller
    to record; after it, a failure to record raises SentUnrecorded."""
    subscription = delivery.subscription
    user = subscription.user
    if role_of(user) is None:
        raise CannotDeliver(f"{user} no longer has a role: reports go to viewers, operators and admins only")
    if not user.email:
        raise CannotDeliver(f"{user} has no email address")
    cameras = subscription.report_cameras()
    if not cameras:
        raise CannotDeliver(f"{user} subscribes to no camera")
    report = report_for(delivery.day, cameras, subscription.timezone, llm)
    message = report_email(report, cameras, user.email, subscription.timezone)
    if not _held(delivery).exists():
        return  # the claim lapsed while the report was written: the attempt that holds it now sends
    message.send()
    sent = {
        "status": Delivery.Status.SENT,
        "sent_at": timezone.now(),
        "report": report,
        "recipient": user.email,
        "message_id": message.extra_headers["Message-ID"],
        "error": "",
    }
    # The message is out: a busy or briefly unreachable database must not turn into a second email.
    for pause in RECORD_PAUSES:
        try:
            _held(delivery).update(**sent)
            count_event("crowdscope_email_deliveries", outcome="sent")
            return
        except DatabaseError as error:
            last_error = error
            time_module.sleep(pause)
    raise SentUnrecorded(f"sent to {user.email} but not recorded: {last_error}")


def record_failure(delivery: Delivery, error: Exception, final: bool) -> None:
    """Keep why it failed (while the claim is this attempt's): pending again for the next retry, or failed for
    good."""
    recorded = _held(delivery).update(
        status=Delivery.Status.FAILED if final else Delivery.Status.PENDING,
        error=f"{type(error).__name__}: {error}",
        enqueued_at=timezone.now(),
    )
    if recorded:
        count_event("crowdscope_email_deliveries", outcome="failed" if final else "retrying")
