"""The demo's site keeps Shanghai's clock, where its frames were filmed; the operator's report email is due by it."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from webapp.cameras.models import Site
from webapp.demo.management.commands.demo import DEMO_EMAIL_AFTER_MINUTES, SITE_NAME, Command
from webapp.reports.models import Subscription

pytestmark = pytest.mark.django_db
SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_the_demo_site_is_on_shanghai_time_even_in_a_database_from_before():
    Site.objects.create(name=SITE_NAME, time_zone="UTC")  # as earlier demos left it
    cameras, _ = Command()._seed_fleet()
    assert Site.objects.get(name=SITE_NAME).time_zone == "Asia/Shanghai"
    assert {camera.time_zone for camera in cameras} == {"Asia/Shanghai"}


def test_the_operators_report_is_due_minutes_from_now_on_the_sites_clock(settings):
    settings.TIME_ZONE = "UTC"
    command = Command()
    command._ensure_users("demo-password")
    cameras, _ = command._seed_fleet()
    due = command._subscribe_operator(cameras)
    subscription = Subscription.objects.get(user__username="operator")
    assert subscription.timezone == "Asia/Shanghai"
    expected = datetime.now(SHANGHAI) + timedelta(minutes=DEMO_EMAIL_AFTER_MINUTES)
    assert abs(due - expected) < timedelta(minutes=1)
    assert subscription.send_at == due.time()
