"""Which endpoints hear of an alert's event, and sending one notification to its endpoint.

Each (endpoint, alert, event) is one `Notification` row, made once inside the transaction that raised or ended the
alert (or by the escalation sweep) and sent after the commit; a delivered one is never sent again. A worker that dies
after the receiver took a notification and before its row says so sends it once more: receivers drop a repeat by its
`X-CrowdScope-Delivery` id (the `id` in the JSON).

Webhooks and brokers are reached only at checked public addresses (egress.py). A failed delivery's `last_error` says
what failed (an answer's status code and its standard reason, or the connection's error), never what a receiver
answered: the delivery log must not become a way to read the answers of servers an endpoint should not reach.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import operator
from datetime import datetime, timedelta
from functools import reduce
from http import HTTPStatus

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from webapp.accounts.scope import sees_camera
from webapp.alerts.models import Alert
from webapp.alerts.rules import AlertChanges
from webapp.cameras.models import Camera
from webapp.celery_app import enqueue
from webapp.notifications import egress, mqtt
from webapp.notifications.models import Endpoint, Notification, NotificationRule
from webapp.queues import DELIVER_NOTIFICATION

log = logging.getLogger(__name__)

# Seconds before each further attempt: about two hours in all before a notification is given up as failed.
RETRY_DELAYS = (10, 30, 60, 300, 900, 1800, 3600)
WEBHOOK_TIMEOUT_S = 10
# A pending notification nobody tried for this long lost its task (the broker was away when it was sent).
LOST_AFTER = timedelta(minutes=10)


def notify(alert: Alert, event: str) -> list[int]:
    """Inside the transaction that raised or ended `alert`: a notification for each endpoint whose enabled rules
    cover the alert's camera and want `event`, sent once the transaction commits. Returns the notifications made."""
    rules = NotificationRule.objects.filter(enabled=True, endpoint__enabled=True).select_related("endpoint")
    endpoints = {rule.endpoint_id: rule.endpoint for rule in rules if rule.covers(alert.camera) and rule.wants(event)}
    made = []
    for endpoint in endpoints.values():
        notification, created = Notification.objects.get_or_create(endpoint=endpoint, alert=alert, event=event)
        if created:
            made.append(notification.pk)
    if made:
        transaction.on_commit(lambda: send_later(made))
    return made


def notify_on_alert_changes(sender, changes: AlertChanges, **_) -> None:
    """webapp.alerts.events.alerts_changed's receiver."""
    notify_alert_changes(changes)


def notify_alert_changes(changes: AlertChanges) -> None:
    for alert in changes.raised:
        notify(alert, Notification.Event.RAISE)
    for alert in changes.ended:
        notify(alert, Notification.Event.CLEAR)


def send_later(notification_ids: list[int]) -> None:
    for notification_id in notification_ids:
        try:
            enqueue(DELIVER_NOTIFICATION, notification_id)
        except Exception:  # the broker is away: the sweep sends it once LOST_AFTER has passed
            log.warning("notification %s: could not be queued; the sweep will send it", notification_id, exc_info=True)


def sweep(now: datetime) -> list[int]:
    """Escalate the open, unacknowledged alerts that have lasted their rules' minutes, and send again the pending
    notifications whose task was lost. Returns the notifications sent."""
    made = []
    rules = NotificationRule.objects.filter(enabled=True, endpoint__enabled=True, escalate_after_minutes__isnull=False)
    for rule in rules.select_related("endpoint"):
        alerts = Alert.objects.filter(
            state=Alert.State.OPEN,
            ended_at__isnull=True,
            raised_at__lte=now - timedelta(minutes=rule.escalate_after_minutes),
        ).exclude(  # one subquery: exclude() with two conditions on notifications__ may match two different rows
            pk__in=Notification.objects.filter(endpoint=rule.endpoint, event=Notification.Event.ESCALATE).values(
                "alert_id"
            )
        )
        if rule.camera_id is not None:
            alerts = alerts.filter(camera_id=rule.camera_id)
        elif rule.site_id is not None:
            alerts = alerts.filter(camera__site_id=rule.site_id)
        for alert in alerts:
            notification, created = Notification.objects.get_or_create(
                endpoint=rule.endpoint, alert=alert, event=Notification.Event.ESCALATE
            )
            if created:
                made.append(notification.pk)
    lost = Notification.objects.filter(
        status=Notification.Status.PENDING, attempts=0, created_at__lt=now - LOST_AFTER
    ).values_list("pk", flat=True)
    send_later(made + list(lost))
    return made + list(lost)


def payload(notification: Notification) -> dict:
    """The JSON a webhook receives and MQTT's alert topic carries."""
    alert = notification.alert
    camera, zone = alert.camera, alert.camera.zone
    return {
        "id": notification.pk,
        "event": notification.event,
        "alert": {
            "id": alert.pk,
            "camera": {
                "id": camera.pk,
                "name": camera.name,
                "site": camera.site.name if camera.site_id else None,
                "time_zone": camera.time_zone,
            },
            "zone": alert.zone_name or None,
            "kind": alert.kind,
            "unit": alert.get_kind_display(),
            "threshold": alert.threshold,
            "value": round(alert.value, 2),
            "peak": round(alert.peak, 2),
            "raised_at": alert.raised_at.astimezone(zone).isoformat(),
            "ended_at": alert.ended_at.astimezone(zone).isoformat() if alert.ended_at else None,
            "state": alert.state,
            "frame_id": alert.frame_id,
            "url": settings.CROWDSCOPE_BASE_URL.rstrip("/") + reverse("alerts:list") + f"#alert-{alert.pk}",
        },
    }


def signature(secret: str, body: bytes) -> str:
    """`X-CrowdScope-Signature`: the body's HMAC-SHA256 under the endpoint's secret, as GitHub signs webhooks."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def headline(notification: Notification) -> str:
    alert = notification.alert
    what = {"raise": "Alert", "escalate": "Still unacknowledged", "clear": "Back under the threshold"}
    value = alert.value if notification.event == Notification.Event.RAISE else alert.peak
    return (
        f"{what[notification.event]}: {alert.subject}, {value:.1f} {alert.get_kind_display()} "
        f"(threshold {alert.threshold:g})"
    )


def status_line(status: int) -> str:
    """An answer's code and its standard phrase ("HTTP 503 Service Unavailable"), never the receiver's own words."""
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def deliver(notification: Notification) -> None:
    """Send `notification` to its endpoint; raises on any failure (the caller records it and retries)."""
    endpoint, data = notification.endpoint, payload(notification)
    if endpoint.kind == Endpoint.Kind.WEBHOOK:
        body = json.dumps(data).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "CrowdScope",
            "X-CrowdScope-Event": notification.event,
            "X-CrowdScope-Delivery": str(notification.pk),
            "X-CrowdScope-Signature": signature(endpoint.secret, body),
        }
        status = egress.post(endpoint.url, body, headers, WEBHOOK_TIMEOUT_S)
        if not 200 <= status < 300:
            redirect = ": redirect not followed" if 300 <= status < 400 else ""
            raise ConnectionError(status_line(status) + redirect)
    elif endpoint.kind == Endpoint.Kind.EMAIL:
        alert = notification.alert
        zone = alert.camera.zone
        lines = [headline(notification), "", f"Raised at {alert.raised_at.astimezone(zone):%Y-%m-%d %H:%M %Z}"]
        if alert.ended_at:
            lines.append(f"Ended at {alert.ended_at.astimezone(zone):%Y-%m-%d %H:%M %Z}")
        lines.append(f"Times in {alert.camera.time_zone}.")
        lines += [f"Peak: {alert.peak:.1f} {alert.get_kind_display()}", "", data["alert"]["url"]]
        recipients = recipients_seeing(endpoint.addresses, alert.camera)
        if recipients:
            send_mail(f"[CrowdScope] {headline(notification)}", "\n".join(lines), None, recipients)
    else:
        prefix = endpoint.topic_prefix
        camera_open = Alert.objects.filter(camera_id=notification.alert.camera_id, ended_at__isnull=True).exists()
        mqtt.send(
            mqtt.Broker.of_endpoint(endpoint),
            [
                mqtt.Message(f"{prefix}/alerts", data, retain=False),
                mqtt.Message(
                    f"{mqtt.camera_topic(prefix, notification.alert.camera_id)}/alert",
                    {"state": "on" if camera_open else "off", "alert": data["alert"]},
                    retain=True,
                ),
            ],
        )


def recipients_seeing(addresses: list[str], camera: Camera) -> list[str]:
    """The addresses that may hear of `camera`: those of no account here (a team's list, a pager), and those of people
    who see its site (`webapp.accounts.scope`); a person of another district is left out."""
    owners: dict[str, list] = {}
    by_address = reduce(operator.or_, (Q(email__iexact=address) for address in addresses), Q(pk__in=[]))
    for user in get_user_model().objects.filter(by_address, is_active=True):
        owners.setdefault(user.email.lower(), []).append(user)
    return [
        address
        for address in addresses
        if address.lower() not in owners or any(sees_camera(user, camera) for user in owners[address.lower()])
    ]


def attempt(notification_id: int, final: bool) -> Notification | None:
    """One attempt at a pending notification: delivered, or its error recorded (failed for good when `final`).
    None when it was delivered already. Raises the attempt's error after recording it."""
    notification = (
        Notification.objects.select_related("endpoint", "alert__camera__site").filter(pk=notification_id).first()
    )
    if notification is None or notification.status == Notification.Status.DELIVERED:
        return None
    now = timezone.now()
    try:
        deliver(notification)
    except Exception as error:
        status = Notification.Status.FAILED if final else Notification.Status.PENDING
        Notification.objects.filter(pk=notification.pk).update(
            status=status,
            attempts=notification.attempts + 1,
            last_attempt_at=now,
            last_error=f"{type(error).__name__}: {error}"[:2000],
        )
        raise
    Notification.objects.filter(pk=notification.pk).update(
        status=Notification.Status.DELIVERED,
        attempts=notification.attempts + 1,
        last_attempt_at=now,
        delivered_at=timezone.now(),
        last_error="",
    )
    notification.refresh_from_db()
    return notification
