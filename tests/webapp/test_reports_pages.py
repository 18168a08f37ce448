"""The report pages: the list, requesting a report (written by the real model, tasks run eagerly), one report with
its narrative and figures, and follow-up questions answered from the report's kept history cache."""

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.test import Client, override_settings
from django.utils import timezone
from django.utils.html import escape

from llm_reports.events import MUST_TELL
from llm_reports.llm import LocalLLM
from llm_reports.report import NO_FACT, write_report
from tests.factories import frame_with_result, user_with_role
from tests.llm_reports import sample_history
from tests.llm_reports.stubbed_model import model_replies
from webapp.accounts.roles import Role
from webapp.cameras.models import Camera, Site
from webapp.ingest.models import Frame
from webapp.reports import generation
from webapp.reports.history import day_period
from webapp.reports.models import Question, Report

pytestmark = pytest.mark.django_db

TIMEZONE = "Asia/Shanghai"
REPORT_DAY = date(2026, 11, 28)
SNAPKV_BUDGET = 256  # under the history prompt's length, so the kept cache is really compressed
REFUSAL = "The facts computed for this period do not answer that question"


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(TIMEZONE))


def store_history() -> list[Camera]:
    """Two cameras counted from 17:00 to 20:00 on the report day and the day before; Quay is the busier."""
    site = Site.objects.create(name="Waterfront")
    quay = Camera.objects.create(site=site, name="Quay", alert_threshold=90)
    bridge = Camera.objects.create(site=site, name="Bridge")
    for days_before in (0, 1):
        day = REPORT_DAY - timedelta(days=days_before)
        for hour in range(17, 21):
            for minute, step in ((5, 0), (35, 6)):
                frame_with_result(quay, local(day, hour, minute), 40 + 2 * hour + step - 10 * days_before)
                frame_with_result(bridge, local(day, hour, minute), 15 + step)
    return [quay, bridge]


@dataclass
class Written:
    response: object  # the response to the POST that requested the report
    report: Report
    cameras: list[Camera]
    user: object


@pytest.fixture(scope="module")
def report_media(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("report-media")


@pytest.fixture(autouse=True)
def media_root(settings, report_media, tmp_path) -> Path:
    """As in conftest, but one media folder for the whole module, where the report written once keeps its cache;
    DEBUG on, as in test_dashboard_pages, so static files come from the finders; local time is Shanghai's."""
    settings.MEDIA_ROOT = report_media
    settings.STATIC_ROOT = tmp_path / "static"
    settings.STATIC_ROOT.mkdir()
    settings.DEBUG = True
    settings.TIME_ZONE = TIMEZONE
    return report_media


@pytest.fixture
def operator(client):
    client.force_login(user_with_role("operator", Role.OPERATOR))
    return client


@pytest.fixture
def eager(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the report tasks run in this process, with the real model


@pytest.fixture(scope="module")
def written(django_db_setup, django_db_blocker, report_media) -> Written:
    """A report requested once through the page, with tasks run eagerly: the real model writes it in the request.

    Its rows are committed, so the tests below share it, and deleted afterwards.
    """
    overrides = override_settings(
        MEDIA_ROOT=report_media,
        DEBUG=True,
        TIME_ZONE=TIMEZONE,
        CELERY_TASK_ALWAYS_EAGER=True,
        REPORT_SNAPKV_BUDGET=SNAPKV_BUDGET,
    )
    with django_db_blocker.unblock(), overrides:
        user = user_with_role("writer", Role.OPERATOR)
        cameras = store_history()
        try:
            client = Client()
            client.force_login(user)
            response = client.post("/reports/new/", {"period": REPORT_DAY.isoformat()})
            yield Written(response, Report.objects.get(created_by=user), cameras, user)
        finally:
            Report.objects.filter(created_by=user).delete()
            Frame.objects.filter(camera__in=cameras).delete()
            Camera.objects.filter(pk__in=[camera.pk for camera in cameras]).delete()
            Site.objects.filter(name="Waterfront").delete()
            user.delete()


def make_report(status: str, timezone: str = TIMEZONE, **fields) -> Report:
    """A report made through the ORM, with no model run."""
    start, end = day_period(REPORT_DAY, timezone)
    return Report.objects.create(period_start=start, period_end=end, timezone=timezone, status=status, **fields)


def one_line(page: str) -> str:
    """The page with every run of white space as one space, as a reader sees its text."""
    return " ".join(page.split())


@pytest.mark.parametrize(("method", "path"), [("get", "/reports/"), ("get", "/reports/1/"), ("post", "/reports/new/")])
def test_the_report_pages_need_a_signed_in_user(client, method, path):
    reports = Report.objects.count()
    response = getattr(client, method)(path, {"period": REPORT_DAY.isoformat()} if method == "post" else None)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"
    assert Report.objects.count() == reports


def test_the_list_renders_with_a_form_for_yesterday(operator):
    response = operator.get("/reports/")
    assert response.status_code == 200
    yesterday = timezone.localdate() - timedelta(days=1)
    assert response.context["yesterday"] == yesterday
    page = response.content.decode()
    assert 'action="/reports/new/"' in page and f'name="period" value="{yesterday.isoformat()}"' in page


def test_the_list_shows_each_report_with_its_status(operator):
    pending = make_report(Report.Status.PENDING)
    response = operator.get("/reports/")
    page = response.content.decode()
    assert pending in response.context["reports"]
    assert f'href="/reports/{pending.pk}/"' in page and "Sat 28 Nov 2026" in page and "Pending" in page


@pytest.mark.parametrize("period", ["2026-13-45", "", "yesterday"])
def test_a_bad_day_is_refused_and_no_report_is_made(operator, period):
    reports = Report.objects.count()
    response = operator.post("/reports/new/", {"period": period})
    assert response.status_code == 400
    assert "Choose a day to report on." in response.content.decode()
    assert Report.objects.count() == reports


def test_a_report_is_requested_by_post_only(operator):
    assert operator.get("/reports/new/").status_code == 405


def test_a_good_day_is_written_at_once_with_eager_tasks_and_redirects_to_the_report(written):
    report = written.report
    assert written.response.status_code == 302
    assert written.response["Location"] == f"/reports/{report.pk}/"
    assert (report.status, report.error) == (Report.Status.DONE, "")
    assert report.text.strip()
    assert (report.period_start, report.period_end, report.timezone) == (*day_period(REPORT_DAY, TIMEZONE), TIMEZONE)
    assert set(report.cameras.all()) == set(written.cameras)
    assert report.history_cache.name


def test_the_kept_history_cache_is_compressed_to_the_snapkv_budget(written):
    report = written.report
    assert report.kept_tokens == SNAPKV_BUDGET < report.prompt_tokens
    assert report.compression_ratio() == report.prompt_tokens / SNAPKV_BUDGET


def test_every_told_sentence_is_the_sentence_of_a_stored_event(written):
    """The narrative is the events' own sentences: nothing the model wrote, every must-tell fact among them."""
    report = written.report
    events = {event["id"]: event for event in report.events}
    assert report.told
    for sentence in report.told:
        assert sentence["text"] == events[sentence["fact_id"]]["sentence"]
    assert report.text == " ".join(sentence["text"] for sentence in report.told)
    told = {sentence["fact_id"] for sentence in report.told}
    assert {event["id"] for event in report.events if event["importance"] >= MUST_TELL} <= told
    chosen = [sentence["fact_id"] for sentence in report.told if sentence["chosen_by_model"]]
    assert chosen and set(chosen) <= set(re.findall(r"F\d+", report.model_reply))


def test_the_report_page_shows_the_told_facts_the_events_the_tables_and_the_compression_figures(operator, written):
    report = written.report
    response = operator.get(f"/reports/{report.pk}/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Report for Saturday 28 November 2026" in page
    for sentence in report.told:
        assert f'<li>{escape(sentence["text"])} <small class="tag">{sentence["fact_id"]} · ' in page
    chosen = sum(sentence["chosen_by_model"] for sentence in report.told)
    assert (
        "Every sentence above is a fact computed from the stored counts and rendered by code; the model "
        f"({report.model_name}) only chose which facts to tell and in what order: it chose {chosen} of the "
        f"{len(report.told)} told."
    ) in one_line(page)
    assert "Events found" in page
    for event in report.events:
        assert f"<td>{event['id']}</td>" in page and escape(event["sentence"]) in page
    # The facts as tables, not as JSON: each camera with its site and bars on the scale of the highest peak.
    assert '<pre class="facts">' not in page and "busiest_cameras" not in page
    (quay,) = [camera for camera in report.facts["cameras"] if camera["camera"] == "Quay"]
    assert "<td>Quay</td> <td>Waterfront</td>" in one_line(page)
    assert f'<meter min="0" max="{quay["peak"]}" value="{quay["peak"]}"></meter>' in page
    assert f"{report.prompt_tokens} tokens, kept {report.kept_tokens} (SnapKV)" in page
    assert escape(report.model_reply) in page
    assert f'action="/reports/{report.pk}/ask/"' in page
    assert 'http-equiv="refresh"' not in page  # nothing left to wait for


def test_a_report_written_without_a_model_says_code_ranked_its_facts_and_tables_its_cameras_and_zones(operator):
    """The sample history (tests/llm_reports): West gate over its threshold of 100 for two hours, East entrance's Far
    side zone over 150 for one."""
    written = write_report(None, sample_history.build_history())
    report = make_report(
        Report.Status.DONE,
        text=written.text,
        told=[{"text": s.text, "fact_id": s.fact_id, "chosen_by_model": s.chosen_by_model} for s in written.sentences],
        events=[event.as_dict() for event in written.events],
        facts=written.facts.as_dict(),
    )
    page = one_line(operator.get(f"/reports/{report.pk}/").content.decode())

    assert "rendered by code; written without a model: the facts were ranked by code." in page
    assert "chosen by the model" not in page and "added: must tell" in page
    assert "<td>West gate</td> <td>—</td>" in page  # a camera of no site
    assert "<td>100</td> <td>2</td>" in page  # its threshold and hours over it
    assert "<td>Far side</td> <td>East entrance</td>" in page
    assert "<td>150</td> <td>1</td>" in page
    assert "<td>East entrance</td> <td>Bund Plaza</td>" in page
    assert "<td>—</td> <td>—</td>" in page  # East entrance: no threshold, so no hours over it


def test_a_report_written_before_told_sentences_were_stored_shows_its_text(operator):
    report = make_report(Report.Status.DONE, text="Quay was the busiest camera.\nBridge stayed quiet.")
    page = operator.get(f"/reports/{report.pk}/").content.decode()
    assert "<li>Quay was the busiest camera.</li>" in page and "<li>Bridge stayed quiet.</li>" in page
    assert "Every sentence above" not in page and "Events found" not in page


def test_the_list_shows_how_many_facts_were_told_and_how_much_of_the_history_was_kept(operator, written):
    report = written.report
    page = operator.get("/reports/").content.decode()
    assert f'href="/reports/{report.pk}/"' in page
    assert f"<td>{len(report.told)} of {len(report.events)}</td>" in page
    assert f"{report.kept_tokens} of {report.prompt_tokens} tokens" in page


def test_a_question_is_answered_from_the_kept_history_cache_and_the_stored_events(
    operator, written, eager, monkeypatch
):
    """The answer continues the stored compressed cache: the history prompt is never run through the model again,
    and the facts are the stored events, never recomputed from the counts. The model's reply is pinned to one of
    them (tests/llm_reports/stubbed_model.py), so the answer must be that fact's sentence."""
    report = written.report
    events = {event["id"]: event for event in report.events}
    about_the_busiest = [fact_id for fact_id, event in events.items() if event["kind"] in ("busiest_hour", "ranking")]
    named = about_the_busiest[-1]
    offered = model_replies(monkeypatch, named)
    extended, prefilled = [], []
    extend, prefill = LocalLLM.extend, LocalLLM.prefill

    def spy_extend(self, kept, ids):
        extended.append((kept.positions, kept.cache.layers[0].keys.shape[2]))
        return extend(self, kept, ids)

    def spy_prefill(self, ids, snapkv=None):
        prefilled.append(ids.shape[1])
        return prefill(self, ids, snapkv)

    def no_history(*args, **kwargs):
        raise AssertionError("a question must not rebuild the history")

    monkeypatch.setattr(LocalLLM, "extend", spy_extend)
    monkeypatch.setattr(LocalLLM, "prefill", spy_prefill)
    monkeypatch.setattr(generation, "build_history", no_history)

    response = operator.post(f"/reports/{report.pk}/ask/", {"question": "  Which camera was the busiest?  "})

    assert response.status_code == 302 and response["Location"] == f"/reports/{report.pk}/"
    question = Question.objects.get(report=report, text="Which camera was the busiest?")
    assert question.asked_by.username == "operator"
    assert extended == [(report.prompt_tokens, report.kept_tokens)] and prefilled == []
    assert [constraint.options for constraint in offered] == [{NO_FACT, *about_the_busiest}]
    assert question.fact_ids == [named] and question.answer == events[named]["sentence"]
    page = operator.get(f"/reports/{report.pk}/").content.decode()
    assert "Which camera was the busiest?" in page and escape(question.answer) in page


def test_a_question_no_fact_answers_is_refused_without_running_the_model(operator, written, eager, monkeypatch):
    report = written.report
    monkeypatch.setattr(LocalLLM, "extend", lambda *args: pytest.fail("the model was run for a refusal"))

    operator.post(f"/reports/{report.pk}/ask/", {"question": "What colour was the sky?"})

    question = Question.objects.get(report=report, text="What colour was the sky?")
    assert question.fact_ids == []
    assert question.answer.startswith(REFUSAL + "; they cover: ")
    assert "refused: no fact of this period answers it" in operator.get(f"/reports/{report.pk}/").content.decode()


@pytest.mark.parametrize("text", ["", "   ", "x" * 501])
def test_an_empty_or_overlong_question_is_ignored(operator, eager, text):
    report = make_report(Report.Status.DONE, text="Quay was the busiest camera.")
    response = operator.post(f"/reports/{report.pk}/ask/", {"question": text})
    assert response.status_code == 302 and response["Location"] == f"/reports/{report.pk}/"
    assert not Question.objects.filter(report=report).exists()


@pytest.mark.parametrize("status", [Report.Status.PENDING, Report.Status.FAILED])
def test_a_question_about_a_report_that_is_not_done_is_not_found(operator, eager, status):
    report = make_report(status)
    response = operator.post(f"/reports/{report.pk}/ask/", {"question": "Which camera was the busiest?"})
    assert response.status_code == 404
    assert not Question.objects.filter(report=report).exists()


def test_a_pending_report_page_says_so_and_refreshes_itself(operator):
    report = make_report(Report.Status.PENDING)
    page = operator.get(f"/reports/{report.pk}/").content.decode()
    assert "The report is being written" in page
    assert 'http-equiv="refresh"' in page


def test_a_failed_report_page_shows_the_error(operator):
    report = make_report(Report.Status.FAILED, error="PromptBudgetError: too long")
    page = operator.get(f"/reports/{report.pk}/").content.decode()
    assert "The report could not be written: PromptBudgetError: too long" in page
    assert 'http-equiv="refresh"' not in page


def test_an_unknown_report_is_not_found(operator):
    assert operator.get("/reports/999999/").status_code == 404


def test_a_report_in_another_timezone_shows_its_own_local_day(operator, settings):
    """A report made with `generate_report --timezone Asia/Shanghai` on a server in UTC is still about the 28th."""
    settings.TIME_ZONE = "UTC"
    report = make_report(Report.Status.PENDING, timezone=TIMEZONE)
    assert "Report for Saturday 28 November 2026" in operator.get(f"/reports/{report.pk}/").content.decode()
    assert "Sat 28 Nov 2026" in operator.get("/reports/").content.decode()
