"""Limits on sign-in attempts, on django-axes (its handler and its lockout answer, named in settings).

Two limits, so that nobody can lock another person out by naming them:

- per client address (`client_address`, which sees through trusted proxies): AXES_FAILURE_LIMIT failures from one
  address, whatever the user names, refuse that address for the cool-off (AXES_COOLOFF_TIME);
- per user name, from any address: no lock, a wait. After a name's first FREE_FAILURES_PER_NAME recent failures, each
  further attempt must come at least 2**(failures - FREE_FAILURES_PER_NAME) seconds (at most
  CROWDSCOPE_LOGIN_NAME_MAX_WAIT_SECONDS) after its latest failure; an earlier one is answered 429 with Retry-After,
  its password unchecked. A person with the right password gets in after that wait, from any address, while someone
  guessing a name from many addresses makes one guess per wait at best.

A refused attempt is not counted as a failure. A success forgives the failures of that name from that address only:
signing in to one's own account does not clear an address that has been guessing at other names.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Max, Sum
from django.http import HttpRequest, HttpResponse

# A mistyped password or two costs nothing.
FREE_FAILURES_PER_NAME = 2


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))


class SignInLimits(AxesDatabaseHandler):
    """django-axes' database handler (AXES_LOCKOUT_PARAMETERS = ["ip_address"]), plus the wait per user name. When it
    refuses an attempt it leaves the seconds to wait in `request.sign_in_retry_after` and whether the name (rather
    than the address) is the reason in `request.sign_in_name_wait`, for `refusal`."""

    def is_locked(self, request: HttpRequest, credentials: dict | None = None) -> bool:
        now = request.axes_attempt_time
        cool_off = get_cool_off(request)
        if super().is_locked(request, credentials):
            latest = AccessAttempt.objects.filter(ip_address=request.axes_ip_address).aggregate(Max("attempt_time"))
            request.sign_in_retry_after = _seconds_until(latest["attempt_time__max"] + cool_off, now)
            request.sign_in_name_wait = False
            return True
        username = get_client_username(request, credentials)
        if username is None or settings.CROWDSCOPE_LOGIN_NAME_MAX_WAIT_SECONDS <= 0:
            return False
        recent = AccessAttempt.objects.filter(username=username, attempt_time__gte=now - cool_off).aggregate(
            failures=Sum("failures_since_start"), latest=Max("attempt_time")
        )
        failures = recent["failures"] or 0
        if failures <= FREE_FAILURES_PER_NAME:
            return False
        wait = min(2 ** (failures - FREE_FAILURES_PER_NAME), settings.CROWDSCOPE_LOGIN_NAME_MAX_WAIT_SECONDS)
        allowed_from = recent["latest"] + timedelta(seconds=wait)
        if now >= allowed_from:
            return False
        request.sign_in_retry_after = _seconds_until(allowed_from, now)
        request.sign_in_name_wait = True
        return True

    def reset_user_attempts(self, request: HttpRequest, credentials: dict | None = None) -> int:
        """On a success: forget this name's failures from this address, and nothing else."""
        deleted, _ = AccessAttempt.objects.filter(
            username=get_client_username(request, credentials), ip_address=request.axes_ip_address
        ).delete()
        return deleted


def refusal(request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None) -> HttpResponse:
    """The answer to a refused sign-in (AXES_LOCKOUT_CALLABLE): 429, with Retry-After and a sentence saying why."""
    wait = getattr(request, "sign_in_retry_after", None)
    if wait is None:  # the failure that reached the address's limit: the whole cool-off starts now
        wait = int(get_cool_off(request).total_seconds())
    if getattr(request, "sign_in_name_wait", False):
        text = f"Too many failed sign-ins for this user name: wait {wait} seconds, then try again."
    else:
        text = f"Too many failed sign-ins from your address: try again in {math.ceil(wait / 60)} minutes."
    return HttpResponse(text, status=429, content_type="text/plain; charset=utf-8", headers={"Retry-After": str(wait)})
