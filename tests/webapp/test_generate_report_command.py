"""manage.py generate_report: one local day's report written in this process by the real local LLM, and bad input."""

import io
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import torch
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import override_settings

from llm_reports.events import MUST_TELL, find_events
from llm_reports.facts import compute_facts
from llm_reports.history import History
from tests.factories import frame_with_result
from tests.stored_media import stored_bytes
from webapp.cameras.models import Camera, Site, Zone
from webapp.ingest.models import Frame
from webapp.reports.history import build_history, day_period
from webapp.reports.models import Report

pytestmark = pytest.mark.django_db

TIMEZONE = "Asia/Shanghai"
REPORT_DAY = date(2026, 11, 28)
SQUARE = [[0, 0], [100, 0], [100, 100], [0, 100]]


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(TIMEZONE))


def store_history() -> list[Camera]:
    """Two cameras counted from 08:00 to 12:00 on the report day, the day before and a week before.

    East entrance is the busier one and breaks its threshold of 60 once, at 11:00 on the report day.
    """
    site = Site.objects.create(name="Harbour")
    east = Camera.objects.create(site=site, name="East entrance", alert_threshold=60)
    west = Camera.objects.create(site=site, name="West gate")
    far_side = Zone.objects.create(camera=east, name="Far side", polygon=SQUARE, alert_threshold=40)
    for days_before, extra in ((0, 10), (1, 0), (7, 5)):
        day = REPORT_DAY - timedelta(days=days_before)
        for hour in range(8, 13):
            spike = 25 if days_before == 0 and hour == 11 else 0
            for minute, step in ((10, 0), (40, 4)):
                east_count = 30 + hour + extra + step + spike
                frame_with_result(east, local(day, hour, minute), east_count, {far_side: east_count / 2})
                frame_with_result(west, local(day, hour, minute), 12 + step + extra / 2)
    return [east, west]


def delete_history(cameras: list[Camera]) -> None:
    Report.objects.filter(cameras__in=cameras).delete()
    Frame.objects.filter(camera__in=cameras).delete()
    sites = {camera.site_id for camera in cameras}
    Camera.objects.filter(pk__in=[camera.pk for camera in cameras]).delete()
    Site.objects.filter(pk__in=sites).delete()


@dataclass
class Generated:
    report: Report
    cameras: list[Camera]
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def report_media(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("report-media")


@pytest.fixture(autouse=True)
def media_root(settings, report_media, tmp_path) -> Path:
    """As in conftest, but one media folder for the whole module, where the report written once keeps its cache."""
    settings.MEDIA_ROOT = report_media
    settings.STATIC_ROOT = tmp_path / "static"
    settings.STATIC_ROOT.mkdir()
    return report_media


@pytest.fixture(scope="module")
def generated(django_db_setup, django_db_blocker, report_media) -> Generated:
    """The command run once, with the real model, on a stored history (committed, and deleted afterwards)."""
    with django_db_blocker.unblock(), override_settings(MEDIA_ROOT=report_media):
        cameras = store_history()
        try:
            stdout, stderr = io.StringIO(), io.StringIO()
            call_command(
                "generate_report", "--period", "2026-11-28", "--timezone", TIMEZONE, stdout=stdout, stderr=stderr
            )
            yield Generated(Report.objects.get(cameras=cameras[0]), cameras, stdout.getvalue(), stderr.getvalue())
        finally:
            delete_history(cameras)


@pytest.fixture(scope="module")
def history(generated, django_db_blocker) -> History:
    """The same stored history, built again."""
    report = generated.report
    with django_db_blocker.unblock():
        return build_history(generated.cameras, report.period_start, report.period_end, report.timezone)


@pytest.fixture(scope="module")
def facts(history):
    return compute_facts(history)


@pytest.mark.parametrize("period", ["2026-13-45", "yesterday", "28/11/2026"])
def test_a_period_that_is_not_a_date_is_refused(period):
    reports = Report.objects.count()
    with pytest.raises(CommandError, match="--period must be a date"):
        call_command("generate_report", "--period", period)
    assert Report.objects.count() == reports


def test_an_unknown_camera_is_refused(camera):
    reports = Report.objects.count()
    unknown = Camera.objects.order_by("-pk").first().pk + 1
    with pytest.raises(CommandError, match=rf"no camera with id \[{unknown}\]"):
        call_command("generate_report", "--period", "2026-11-28", "--camera", str(camera.pk), "--camera", str(unknown))
    assert Report.objects.count() == reports


def test_the_report_is_done_for_the_local_day_of_every_camera(generated):
    report = generated.report
    assert (report.status, report.error) == (Report.Status.DONE, "")
    assert (report.period_start, report.period_end) == day_period(REPORT_DAY, TIMEZONE)
    assert report.timezone == TIMEZONE
    assert set(report.cameras.all()) == set(generated.cameras)
    assert report.model_name.endswith(".gguf")


def test_the_narrative_is_printed_and_the_figures_reported(generated):
    report = generated.report
    assert report.text.strip()
    assert report.text in generated.stdout
    assert f"report {report.pk}: {report.prompt_tokens} prompt tokens kept as {report.kept_tokens}" in generated.stderr
    chosen = sum(sentence["chosen_by_model"] for sentence in report.told)
    told = f"{len(report.told)} sentences told ({chosen} chosen by the model) from {len(report.events)} facts"
    assert told in generated.stderr


def test_the_compression_figures_are_stored(generated):
    """SnapKV keeps the whole prompt when it is under the budget, and the budget otherwise."""
    report = generated.report
    budget = settings.REPORT_SNAPKV_BUDGET
    assert report.prompt_tokens > 0
    assert report.kept_tokens <= report.prompt_tokens and report.kept_tokens <= budget
    assert report.kept_tokens == min(report.prompt_tokens, budget)
    assert report.kv_cache_mb > 0


def test_the_stored_facts_are_those_of_the_stored_history(generated, facts):
    stored = generated.report.facts
    assert stored == facts.as_dict()
    assert stored["timezone"] == TIMEZONE
    assert stored["busiest_cameras"] == ["East entrance", "West gate"]
    assert [(breach["camera"], breach["zone"], breach["count"]) for breach in stored["breaches"]] == [
        ("East entrance", None, 1)
    ]
    assert stored["breaches"][0]["first_at"] == local(REPORT_DAY, 11).isoformat()


def test_the_stored_events_are_those_of_the_stored_history(generated, history, facts):
    """The ids a question's answer names later are those of these events, as the report's prompt listed them."""
    assert generated.report.events == [event.as_dict() for event in find_events(history, facts)]


def test_the_narrative_is_the_sentences_of_its_events_with_every_must_tell_one(generated):
    report = generated.report
    events = {event["id"]: event for event in report.events}
    assert report.text == " ".join(sentence["text"] for sentence in report.told)
    for sentence in report.told:
        assert sentence["text"] == events[sentence["fact_id"]]["sentence"]
    told = {events[sentence["fact_id"]]["kind"] for sentence in report.told}
    assert "breach" in told  # East entrance over its threshold at 11:00 is an event no report leaves out
    must = {event["id"] for event in report.events if event["importance"] >= MUST_TELL}
    assert must <= {sentence["fact_id"] for sentence in report.told}
    assert any(sentence["chosen_by_model"] for sentence in report.told) and report.model_reply


def test_the_compressed_history_cache_is_stored_for_questions(generated):
    report = generated.report
    assert report.history_cache.name.startswith("report-caches/")
    assert report.history_cache.name.endswith(f"/{report.pk}-history.pt")
    saved = torch.load(io.BytesIO(stored_bytes(report.history_cache.name)), weights_only=True)
    assert saved["positions"] == report.prompt_tokens
    assert {layer[0].shape[2] for layer in saved["layers"]} == {report.kept_tokens}
    assert [message["role"] for message in saved["messages"]] == ["system", "user"]
