"""Reports in the dashboard: the list, one report with its told facts, events, tables and figures, and follow-up
questions."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from webapp.accounts.roles import Role, role_required
from webapp.accounts.scope import sees_every_site, visible_cameras
from webapp.cameras.models import Camera
from webapp.celery_app import enqueue
from webapp.queues import ANSWER_QUESTION, GENERATE_REPORT
from webapp.reports.forms import SubscriptionForm
from webapp.reports.models import Question, Report, Subscription
from webapp.reports.pending import create_report
from webapp.reports.tables import event_rows, series_table, told_rows

MAX_QUESTION_LENGTH = Question._meta.get_field("text").max_length


def readable_reports(user):
    """The reports on cameras that `user` all sees: one that also tells of another site's camera is not theirs."""
    if sees_every_site(user):
        return Report.objects.all()
    return Report.objects.exclude(cameras__in=Camera.objects.exclude(pk__in=visible_cameras(user)))


def _list_page(request, error: str = "", status: int = 200):
    context = {
        "reports": readable_reports(request.user).prefetch_related("cameras").defer("facts")[:100],
        "yesterday": timezone.localdate() - timedelta(days=1),
        "error": error,
    }
    return render(request, "reports/report_list.html", context, status=status)


@role_required(Role.VIEWER)
def report_list(request):
    return _list_page(request)


@role_required(Role.VIEWER)
def report_detail(request, pk: int):
    report = get_object_or_404(readable_reports(request.user).prefetch_related("cameras", "questions"), pk=pk)
    busy = report.status == Report.Status.PENDING or any(not q.answer for q in report.questions.all())
    context: dict[str, Any] = {"report": report, "busy": busy}
    if report.status == Report.Status.DONE:
        context |= {
            "told": told_rows(report),
            "chosen": sum(sentence["chosen_by_model"] for sentence in report.told),
            "events": event_rows(report),
        }
    if report.status == Report.Status.DONE and report.facts:
        context |= {"cameras": series_table(report.facts, "cameras"), "zones": series_table(report.facts, "zones")}
    return render(request, "reports/report_detail.html", context)


@role_required(Role.OPERATOR)
@require_POST
def request_report(request):
    try:
        day = date.fromisoformat(request.POST.get("period", ""))
    except ValueError:
        return _list_page(request, "Choose a day to report on.", status=400)
    cameras = None if sees_every_site(request.user) else list(visible_cameras(request.user))
    report = create_report(day, cameras, user=request.user)
    enqueue(GENERATE_REPORT, report.pk)
    return redirect("reports:detail", pk=report.pk)


@role_required(Role.OPERATOR)
@require_POST
def ask(request, pk: int):
    report = get_object_or_404(readable_reports(request.user), pk=pk, status=Report.Status.DONE)
    text = request.POST.get("question", "").strip()
    if not text or len(text) > MAX_QUESTION_LENGTH:
        return redirect("reports:detail", pk=report.pk)
    question = Question.objects.create(report=report, text=text, asked_by=request.user)
    enqueue(ANSWER_QUESTION, question.pk)
    return redirect("reports:detail", pk=report.pk)


@role_required(Role.VIEWER)
def subscription(request):
    """The signed-in user's daily report email: cameras or sites, local time and time zone."""
    current = Subscription.objects.filter(user=request.user).first() or Subscription(
        user=request.user, timezone=settings.TIME_ZONE
    )
    form = SubscriptionForm(request.POST or None, instance=current, user=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        return redirect("reports:subscription")
    status = 400 if request.method == "POST" else 200
    deliveries = current.deliveries.all()[:10] if current.pk else []
    context = {"form": form, "deliveries": deliveries, "email": request.user.email}
    return render(request, "reports/subscription.html", context, status=status)
