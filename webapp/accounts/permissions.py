"""Who may call what, in one place: the API's permission classes and who may read a camera's data. Pages check
roles with `webapp.accounts.roles.role_required`."""

from __future__ import annotations

from rest_framework import permissions

from webapp.accounts.roles import Role, has_role, role_of
from webapp.accounts.scope import sees_camera
from webapp.cameras.models import Camera, Gateway


class IsReader(permissions.BasePermission):
    """Reading the API: a signed-in person with a role (viewer or above), or an API key."""

    message = "this needs the viewer role, or an API key"

    def has_permission(self, request, view) -> bool:
        return has_role(request.user, Role.VIEWER)


class IsGateway(permissions.BasePermission):
    message = "only a gateway (Authorization: Token ...) can upload frames"

    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, Gateway)


class PeopleWithRole(permissions.BasePermission):
    """Signed-in people: viewers (and above) read, operators and admins write. Gateways have no access here."""

    message = "this needs a signed-in viewer to read, and an operator or admin to change anything"

    def has_permission(self, request, view) -> bool:
        if isinstance(request.user, Gateway):
            return False
        needed = Role.VIEWER if request.method in permissions.SAFE_METHODS else Role.OPERATOR
        held = role_of(request.user)
        return held is not None and held >= needed


def can_read_camera(principal, camera: Camera) -> bool:
    """A gateway reads its own cameras; a signed-in person with a role (viewer or above), or an API key, reads the
    cameras of the sites it sees (`webapp.accounts.scope`)."""
    if isinstance(principal, Gateway):
        return principal.owns(camera)
    return role_of(principal) is not None and sees_camera(principal, camera)
