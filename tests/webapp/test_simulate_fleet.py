"""The fleet simulator writes a history the pages can read as if workers had counted it, fast, and extends it back."""

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db.models import Sum
from django.utils import timezone

from webapp.alerts.models import Alert
from webapp.cameras.models import Camera
from webapp.ingest.models import Frame, LatestCount, QuarterHourCount, Result, ZoneCount

pytestmark = pytest.mark.django_db


def simulate(capsys, *args: str) -> dict:
    call_command("simulate_fleet", *args, "--json")
    return json.loads(capsys.readouterr().out)


def test_a_fleet_gets_a_counted_history_and_a_longer_one_adds_the_older_days(capsys):
    first = simulate(capsys, "--cameras", "120", "--days", "0.25", "--every", "600")
    assert set(first) == {"cameras", "frames", "seconds", "database_bytes"}
    fleet = Camera.objects.filter(name__startswith="fleet-")
    assert first["cameras"] == fleet.count() == 120 and fleet.values("site").distinct().count() == 2
    # 6 hours at one frame in 10 minutes, less the hour the silent camera missed; and a few frames still waiting.
    assert first["frames"] == 120 * 36 - 6 == Result.objects.count()
    assert Frame.objects.filter(status=Frame.Status.QUEUED).count() == 2 * 5
    assert QuarterHourCount.objects.filter(zone_name="").aggregate(n=Sum("frames"))["n"] == first["frames"]
    zone_total = QuarterHourCount.objects.exclude(zone_name="").aggregate(total=Sum("total"))["total"]
    assert zone_total == pytest.approx(ZoneCount.objects.aggregate(total=Sum("count"))["total"])
    assert LatestCount.objects.count() == 120
    silent = LatestCount.objects.get(camera__name="fleet-0043")
    assert timezone.now() - silent.captured_at > timedelta(minutes=59)
    crowded = Camera.objects.get(name="fleet-0008")
    assert crowded.latest_count.count > crowded.alert_threshold
    assert Alert.objects.filter(camera=crowded, state=Alert.State.OPEN).exists()

    oldest = Frame.objects.order_by("captured_at").first().captured_at
    more = simulate(capsys, "--cameras", "120", "--days", "0.5", "--every", "600")
    # 6 more hours per camera, give or take the one frame the seconds between the two runs move across each grid.
    assert abs(more["frames"] - 120 * 36) <= 120 and Result.objects.count() == first["frames"] + more["frames"]
    assert Frame.objects.filter(captured_at__gte=oldest).count() == first["frames"] + 10
    assert LatestCount.objects.get(camera=crowded).captured_at > oldest + timedelta(hours=5)
