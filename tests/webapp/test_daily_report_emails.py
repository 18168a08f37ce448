"""Daily report emails through a real SMTP server on loopback (aiosmtpd, started by the tests): the message's HTML,
plain-text and inline image parts and its recipient; one email per subscriber and day however often the job runs
or a worker dies; retries after a refused send; the subscriber's time zone decides the day; no cameras, no email;
and `send_daily_reports --date` for a missed day."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone as django_timezone
from PIL import Image

from llm_reports.facts import round_shown
from tests.factories import queued_frame, user_with_role
from tests.loopback import free_port
from webapp.accounts.roles import Role, assign_role
from webapp.cameras.models import Camera, Site
from webapp.reports.delivery import SENDING_LEASE, due_deliveries
from webapp.reports.emails import report_email
from webapp.reports.models import Delivery, Report, Subscription
from webapp.reports.pending import create_report
from workers.tasks import count_frame, send_due_reports, send_report_email

pytestmark = pytest.mark.django_db

SHANGHAI = "Asia/Shanghai"
REPORT_DAY = date(2026, 11, 29)


@pytest.fixture
def inbox(smtp_inbox, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CROWDSCOPE_BASE_URL = "http://dashboard.example:8000"
    return smtp_inbox


def local(day: date, hour: int, minute: int = 0, zone: str = SHANGHAI) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(zone))


@pytest.fixture
def quay(small_jpeg_bytes) -> Camera:
    """A camera with two real frames counted by the task on the report day (Shanghai time)."""
    camera = Camera.objects.create(site=Site.objects.create(name="Waterfront"), name="Quay", alert_threshold=90)
    for hour in (9, 18):
        frame = queued_frame(camera, small_jpeg_bytes, captured_at=local(REPORT_DAY, hour))
        count_frame.apply(args=[frame.pk]).get()
    return camera


SUBSCRIBED_SINCE = datetime(2026, 11, 1, tzinfo=UTC)


def subscriber(username: str, *cameras: Camera, zone: str = SHANGHAI, send_at: time = time(7, 0)) -> Subscription:
    """A viewer subscribed since 1 November to these cameras."""
    user = user_with_role(username, Role.VIEWER, email=f"{username}@example.org")
    subscription = Subscription.objects.create(user=user, timezone=zone, send_at=send_at)
    Subscription.objects.filter(pk=subscription.pk).update(created_at=SUBSCRIBED_SINCE)
    subscription.refresh_from_db()
    subscription.cameras.set(cameras)
    return subscription


TOLD = [
    {"text": "Quay was busiest in the evening.", "fact_id": "F2", "chosen_by_model": True},
    {"text": "Bridge stayed quiet.", "fact_id": "F5", "chosen_by_model": False},
]


def written_report(day: date, cameras: list[Camera], zone: str = SHANGHAI) -> Report:
    """A report already written for these cameras and day (the job reuses it instead of writing another)."""
    report = create_report(day, cameras, zone)
    report.told = TOLD
    report.text = " ".join(sentence["text"] for sentence in TOLD)
    report.status = Report.Status.DONE
    report.save()
    return report


# 08:30 on 30 November in Shanghai: the report of the 29th is due for a 07:00 subscriber there.
MORNING_AFTER = local(REPORT_DAY + timedelta(days=1), 8, 30)


def test_the_email_has_html_plain_text_inline_charts_and_the_right_recipient(inbox, quay):
    subscription = subscriber("ana", quay)
    report = written_report(REPORT_DAY, [quay])

    delivery = due_deliveries(MORNING_AFTER)[0]
    send_report_email.apply(args=[delivery.pk]).get()

    ((recipients, message),) = inbox.messages
    assert recipients == ["ana@example.org"] and message["To"] == "ana@example.org"
    assert "29 Nov 2026" in message["Subject"]
    plain = message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")  # lines as sent: CRLF
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "Quay was busiest in the evening.\n\nBridge stayed quiet.\n" in plain  # a paragraph each told sentence
    assert ">Quay was busiest in the evening.</p>" in html and ">Bridge stayed quiet.</p>" in html
    link = f"http://dashboard.example:8000/reports/{report.pk}/"
    assert link in plain and link in html
    images = [part for part in message.walk() if part.get_content_maintype() == "image"]
    # The day's counts (a PNG chart), and the busiest frame with its heatmap (a JPEG photo).
    assert [image.get_content_type() for image in images] == ["image/png", "image/jpeg"]
    for image, magic in zip(images, (b"\x89PNG", b"\xff\xd8\xff"), strict=True):
        cid = image["Content-ID"].strip("<>")
        assert f"cid:{cid}" in html
        assert image.get_content().startswith(magic)
    assert message.get_content_type() == "multipart/related"
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT and delivery.report == report
    assert delivery.message_id == message["Message-ID"] and delivery.attempts == 1
    assert subscription.deliveries.get() == delivery


def peak_picture(message) -> np.ndarray:
    (part,) = [part for part in message.message().walk() if part.get_content_type() == "image/jpeg"]
    return np.asarray(Image.open(io.BytesIO(part.get_payload(decode=True))).convert("L"), dtype=np.float32)


def test_four_cameras_email_stays_small_and_frames_can_be_blurred_or_left_out(jpeg_bytes, settings):
    site = Site.objects.create(name="Centre")
    cameras = [Camera.objects.create(site=site, name=f"Gate {number}") for number in range(4)]
    for camera in cameras:  # full-size 1024x768 frames, as the demo's gateways send
        count_frame.apply(args=[queued_frame(camera, jpeg_bytes, captured_at=local(REPORT_DAY, 12)).pk]).get()
    report = written_report(REPORT_DAY, cameras)

    settings.CROWDSCOPE_EMAIL_FRAMES = "frame"
    message = report_email(report, cameras, "ana@example.org", SHANGHAI)
    assert len(message.message().as_bytes()) < 500_000
    pictures = {}
    for frames in ("frame", "blurred", "none"):
        settings.CROWDSCOPE_EMAIL_FRAMES = frames
        pictures[frames] = peak_picture(report_email(report, cameras[:1], "ana@example.org", SHANGHAI))

    def detail(picture: np.ndarray) -> float:  # how much the picture changes from one pixel to the next
        return float(np.abs(np.diff(picture, axis=1)).mean())

    assert detail(pictures["blurred"]) < 0.5 * detail(pictures["frame"])
    # Left out: where nobody is, the dark ground shows, not the scene.
    assert abs(float(np.median(pictures["none"])) - 34) < 6 < abs(float(np.median(pictures["frame"])) - 34)


@pytest.mark.slow  # the local LLM writes the report
def test_the_job_writes_the_report_with_the_local_model_when_none_exists(inbox, quay, settings):
    settings.REPORT_SNAPKV_BUDGET = 256
    subscriber("ana", quay)

    for delivery in due_deliveries(MORNING_AFTER):
        send_report_email.apply(args=[delivery.pk]).get()

    report = Report.objects.get()
    assert report.status == Report.Status.DONE and report.text
    assert report.period_start == local(REPORT_DAY, 0) and [c.pk for c in report.cameras.all()] == [quay.pk]
    ((_, message),) = inbox.messages
    plain = message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
    assert report.told
    for sentence in report.told:
        assert f"{sentence['text']}\n\n" in plain
    # The camera's figures are the report's facts, rounded as its sentences round them: one average per camera.
    (camera,) = report.facts["cameras"]
    peak_at = datetime.fromisoformat(camera["peak_at"]).astimezone(ZoneInfo(SHANGHAI))
    mean, peak = round_shown(camera["mean"]), round_shown(camera["peak"])
    assert f"average {mean} people, peak {peak} at {peak_at:%H:%M}" in plain


def test_a_report_written_before_told_sentences_were_stored_is_sent_line_by_line(quay):
    report = create_report(REPORT_DAY, [quay], SHANGHAI)
    report.text, report.status = "Quay was busiest in the evening.\n\nBridge stayed quiet.", Report.Status.DONE
    report.save()
    plain = report_email(report, [quay], "ana@example.org", SHANGHAI).body
    assert "Quay was busiest in the evening.\n\nBridge stayed quiet.\n" in plain


def test_running_the_job_twice_sends_one_email(inbox, quay, monkeypatch):
    subscriber("ana", quay)
    written_report(REPORT_DAY, [quay])
    monkeypatch.setattr(django_timezone, "now", lambda: MORNING_AFTER.astimezone(UTC))

    assert send_due_reports.apply().get() == 1
    assert send_due_reports.apply().get() == 0

    assert len(inbox.messages) == 1
    assert Delivery.objects.get().status == Delivery.Status.SENT


def test_a_delivery_whose_worker_died_mid_way_is_sent_once_later(inbox, quay):
    subscription = subscriber("ana", quay)
    written_report(REPORT_DAY, [quay])
    # The worker claimed it and died before sending: the row says sending, since longer than the lease.
    Delivery.objects.create(
        subscription=subscription,
        day=REPORT_DAY,
        status=Delivery.Status.SENDING,
        attempts=1,
        claimed_at=MORNING_AFTER - SENDING_LEASE - timedelta(minutes=1),
    )
    (lost,) = due_deliveries(MORNING_AFTER)
    send_report_email.apply(args=[lost.pk]).get()
    send_report_email.apply(args=[lost.pk]).get()  # a late redelivery of the dead worker's task

    assert len(inbox.messages) == 1
    lost.refresh_from_db()
    assert lost.status == Delivery.Status.SENT and lost.attempts == 2


def test_an_attempt_in_progress_is_not_sent_twice(inbox, quay):
    subscription = subscriber("ana", quay)
    written_report(REPORT_DAY, [quay])
    delivery = Delivery.objects.create(
        subscription=subscription, day=REPORT_DAY, status=Delivery.Status.SENDING, claimed_at=django_timezone.now()
    )
    assert due_deliveries(MORNING_AFTER) == []
    assert send_report_email.apply(args=[delivery.pk]).get() == "sent already, or another attempt holds it"
    assert inbox.messages == []


def test_a_refused_send_is_retried_and_recorded(inbox, quay):
    subscriber("ana", quay)
    written_report(REPORT_DAY, [quay])
    inbox.refuse = 2  # the mail server answers 451 twice, then takes it

    (delivery,) = due_deliveries(MORNING_AFTER)
    send_report_email.apply(args=[delivery.pk]).get()

    assert len(inbox.messages) == 1
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT and delivery.attempts == 3


def test_a_send_that_keeps_failing_ends_failed_with_its_error(inbox, quay, settings):
    subscriber("ana", quay)
    written_report(REPORT_DAY, [quay])
    settings.EMAIL_PORT = free_port()  # nothing listens there

    (delivery,) = due_deliveries(MORNING_AFTER)
    with pytest.raises(ConnectionRefusedError):
        send_report_email.apply(args=[delivery.pk]).get()

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED and delivery.attempts == 6
    assert "ConnectionRefusedError" in delivery.error
    assert due_deliveries(MORNING_AFTER + timedelta(hours=2)) == []  # failed for good: only by hand again


def test_the_subscribers_time_zone_decides_the_day_and_the_time(quay):
    shanghai = subscriber("ana", quay, zone=SHANGHAI, send_at=time(7, 0))
    new_york = subscriber("bo", quay, zone="America/New_York", send_at=time(7, 0))
    late_evening_utc = datetime(2026, 11, 29, 22, 0, tzinfo=UTC)  # 06:00 on the 30th in Shanghai, 17:00 in New York

    assert shanghai.day_due(late_evening_utc) == date(2026, 11, 28)  # the 29th's is due at 07:00 on the 30th
    assert new_york.day_due(late_evening_utc) == date(2026, 11, 28)
    assert shanghai.day_due(late_evening_utc + timedelta(hours=1)) == date(2026, 11, 29)

    due = due_deliveries(late_evening_utc + timedelta(hours=1))
    assert {(delivery.subscription.user.username, delivery.day) for delivery in due} == {
        ("ana", date(2026, 11, 29)),
        ("bo", date(2026, 11, 28)),
    }


def test_a_day_missed_while_the_beat_was_down_is_sent_after_midnight(quay):
    subscription = subscriber("ana", quay, send_at=time(23, 30))
    # The beat was down from 23:00 on the 30th to 00:10 on 1 December (Shanghai): the 29th's email is still owed.
    assert subscription.day_due(local(date(2026, 12, 1), 0, 10)) == date(2026, 11, 29)
    assert subscription.day_due(local(date(2026, 12, 1), 23, 31)) == date(2026, 11, 30)


def test_no_day_falls_due_before_the_subscription_existed(quay):
    subscription = subscriber("ana", quay)
    Subscription.objects.filter(pk=subscription.pk).update(created_at=local(REPORT_DAY, 12))
    subscription.refresh_from_db()
    assert subscription.day_due(local(REPORT_DAY, 13)) is None  # the 28th was due at 07:00, before it existed
    assert subscription.day_due(MORNING_AFTER) == REPORT_DAY


def test_a_subscriber_who_lost_their_role_gets_no_email(inbox, quay):
    subscription = subscriber("ana", quay)
    written_report(REPORT_DAY, [quay])
    assign_role(subscription.user, None)
    assert due_deliveries(MORNING_AFTER) == []
    with pytest.raises(CommandError, match="1 email"):
        call_command("send_daily_reports", "--date", REPORT_DAY.isoformat())
    assert inbox.messages == []
    assert "no longer has a role" in Delivery.objects.get().error


def test_a_subscriber_with_no_cameras_gets_no_email(inbox, quay):
    subscriber("ana")  # no cameras, no sites
    assert due_deliveries(MORNING_AFTER) == []
    assert not Delivery.objects.exists() and inbox.messages == []


def test_a_site_subscription_covers_its_cameras(quay):
    subscription = subscriber("ana")
    subscription.sites.set([quay.site])
    Camera.objects.create(name="elsewhere")
    assert subscription.report_cameras() == [quay]


def test_send_daily_reports_sends_a_missed_day_once(inbox, quay, capsys):
    subscriber("ana", quay)
    subscriber("cy")  # no cameras
    written_report(REPORT_DAY, [quay])

    call_command("send_daily_reports", "--date", REPORT_DAY.isoformat())
    call_command("send_daily_reports", "--date", REPORT_DAY.isoformat())

    assert len(inbox.messages) == 1
    output = capsys.readouterr().out
    assert "ana: sent to ana@example.org" in output and "ana: sent already, not sent again" in output
    assert "cy: no cameras, nothing sent" in output


def test_send_daily_reports_refuses_a_bad_date():
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command("send_daily_reports", "--date", "yesterday")
