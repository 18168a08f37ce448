"""Gateway tokens for the REST API (`Authorization: Token ...`), and who may read a camera's data."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from webapp.accounts.roles import role_of
from webapp.accounts.scope import sees_camera
from webapp.cameras.models import Camera, Gateway

# A gateway's last contact is written at most this often: a write on every upload cost each one a commit of its own.
LAST_SEEN_RESOLUTION = timedelta(seconds=10)


class HashedSecretAuthentication(authentication.BaseAuthentication):
    """`Authorization: <keyword> <secret>` for principals kept by the hash of their secret (gateways, API keys):
    authenticates as the active principal holding it, and writes when it was last used (at most every
    LAST_SEEN_RESOLUTION)."""

    keyword: str
    credential: str  # what the secret is called in the errors
    last_used_field: str

    def principal(self, secret: str):
        """The active principal whose secret this is, or None."""
        raise NotImplementedError

    def authenticate(self, request) -> tuple | None:
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0] != self.keyword:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                f"the Authorization header must be '{self.keyword} <{self.credential}>'"
            )
        principal = self.principal(header[1])
        if principal is None:
            raise exceptions.AuthenticationFailed(f"unknown or revoked {self.credential}")
        now, last = timezone.now(), getattr(principal, self.last_used_field)
        if last is None or now - last >= LAST_SEEN_RESOLUTION:
            type(principal).objects.filter(pk=principal.pk).update(**{self.last_used_field: now})
        return principal, principal

    def authenticate_header(self, request) -> str:
        return self.keyword


class GatewayTokenAuthentication(HashedSecretAuthentication):
    keyword, credential, last_used_field = "Token", "gateway token", "last_seen_at"

    def principal(self, secret: str) -> Gateway | None:
        return Gateway.from_token(secret)


class GatewayTokenScheme(OpenApiAuthenticationExtension):
    target_class = GatewayTokenAuthentication
    name = "gatewayToken"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization", "description": "Token <gateway token>"}


class IsGateway(permissions.BasePermission):
    message = "only a gateway (Authorization: Token ...) can upload frames"

    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, Gateway)


def can_read_camera(principal, camera: Camera) -> bool:
    """A gateway reads its own cameras; a signed-in person with a role (viewer or above), or an API key, reads the
    cameras of the sites it sees (`webapp.accounts.scope`)."""
    if isinstance(principal, Gateway):
        return principal.owns(camera)
    return role_of(principal) is not None and sees_camera(principal, camera)
