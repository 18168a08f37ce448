"""Gateway tokens for the REST API (`Authorization: Token ...`). Who may call what: `webapp.accounts.permissions`."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from webapp.cameras.models import Gateway, HashedSecretPrincipal

# A gateway's last contact is written at most this often: a write on every upload cost each one a commit of its own.
LAST_SEEN_RESOLUTION = timedelta(seconds=10)


class HashedSecretAuthentication(authentication.BaseAuthentication):
    """`Authorization: <keyword> <secret>` for a HashedSecretPrincipal `model` (gateways, API keys): authenticates as
    the active principal holding the secret, and writes when it was last used (at most every LAST_SEEN_RESOLUTION).
    The API's description names it `scheme_name`, as `security_scheme` (HashedSecretScheme)."""

    model: type[HashedSecretPrincipal]
    keyword: str
    credential: str  # what the secret is called in the errors
    scheme_name: str
    security_scheme: dict[str, str]

    def authenticate(self, request) -> tuple | None:
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0] != self.keyword:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                f"the Authorization header must be '{self.keyword} <{self.credential}>'"
            )
        principal = self.model.holding(header[1])
        if principal is None:
            raise exceptions.AuthenticationFailed(f"unknown or revoked {self.credential}")
        now, last = timezone.now(), getattr(principal, principal.LAST_USED_FIELD)
        if last is None or now - last >= LAST_SEEN_RESOLUTION:
            type(principal).objects.filter(pk=principal.pk).update(**{principal.LAST_USED_FIELD: now})
        return principal, principal

    def authenticate_header(self, request) -> str:
        return self.keyword


class HashedSecretScheme(OpenApiAuthenticationExtension):
    """The API description's security scheme of each HashedSecretAuthentication."""

    target_class = HashedSecretAuthentication
    match_subclasses = True

    @property
    def name(self) -> str:
        return self.target.scheme_name

    def get_security_definition(self, auto_schema) -> dict[str, str]:
        return self.target.security_scheme


class GatewayTokenAuthentication(HashedSecretAuthentication):
    model, keyword, credential = Gateway, "Token", "gateway token"
    scheme_name = "gatewayToken"
    security_scheme = {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "Token <gateway token>",
    }
