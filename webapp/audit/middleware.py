"""Who and where for each audit entry written while a request is served."""

from __future__ import annotations

from auditlog.middleware import AuditlogMiddleware
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from webapp.accounts.addresses import client_address


class AuditMiddleware(AuditlogMiddleware):
    """django-auditlog's middleware, with two changes:

    - the address is the client's as `client_address` knows it (CROWDSCOPE_TRUSTED_PROXIES), not the left end of
      X-Forwarded-For, which the client writes itself; no port is kept (X-Forwarded-Port is the client's word or
      the proxy's own port);
    - the actor is read when an entry is written, not as the request comes in: a REST view authenticates inside the
      view (after every middleware), and requests that write nothing (frame uploads) cost no look-up of a user.
    """

    def get_extra_data(self, request: HttpRequest) -> dict:
        return {
            "remote_addr": client_address(request) or None,
            "remote_port": None,
            "actor": SimpleLazyObject(lambda: self._get_actor(request)),
        }
