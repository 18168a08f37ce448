"""Request rates per gateway token and per signed-in user on the REST API: past its rate a caller gets 429 with
Retry-After (the gateway agent waits and retries). Counted in Django's cache, which must be shared by every web
process for the rate to hold across them (CROWDSCOPE_CACHE_URL, Redis in production)."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from webapp.cameras.models import Gateway


class CallerRateThrottle(SimpleRateThrottle):
    """One rate for each gateway (CROWDSCOPE_GATEWAY_RATE) and one for each signed-in person (CROWDSCOPE_USER_RATE),
    as DRF writes rates ("600/min"); read at each request, so that a changed setting applies at once."""

    def get_rate(self) -> str | None:
        return None  # chosen per request, in allow_request

    def allow_request(self, request, view) -> bool:
        gateway = isinstance(request.user, Gateway)
        self.rate = settings.CROWDSCOPE_GATEWAY_RATE if gateway else settings.CROWDSCOPE_USER_RATE
        if not self.rate or request.user is None or not getattr(request.user, "is_authenticated", True):
            return True  # no rate set, or nobody signed in: authentication answers those
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view) -> str:
        kind = type(request.user).__name__.lower()  # gateway, apikey or user: their ids overlap
        return self.cache_format % {"scope": kind, "ident": request.user.pk}
