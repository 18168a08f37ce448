"""Gateway tokens for the REST API (`Authorization: Token ...`), and who may read a camera's data."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from webapp.accounts.roles import role_of
from webapp.cameras.models import Camera, Gateway

# A gateway's last contact is written at most this often: a write on every upload cost each one a commit of its own.
LAST_SEEN_RESOLUTION = timedelta(seconds=10)


class GatewayTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request) -> tuple[Gateway, Gateway] | None:
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0] != self.keyword:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("the Authorization header must be 'Token <token>'")
        gateway = Gateway.from_token(header[1])
        if gateway is None:
            raise exceptions.AuthenticationFailed("unknown or revoked gateway token")
        now = timezone.now()
        if gateway.last_seen_at is None or now - gateway.last_seen_at >= LAST_SEEN_RESOLUTION:
            Gateway.objects.filter(pk=gateway.pk).update(last_seen_at=now)
        return gateway, gateway

    def authenticate_header(self, request) -> str:
        return self.keyword


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
    """A gateway reads its own cameras; a signed-in person with a role (viewer or above) reads every camera."""
    if isinstance(principal, Gateway):
        return principal.owns(camera)
    return role_of(principal) is not None
