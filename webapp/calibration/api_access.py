"""What the calibration API's views share: who may call them, and small helpers for their answers."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.urls import reverse
from rest_framework import exceptions, permissions
from rest_framework.views import APIView

from webapp.accounts.roles import Role, role_of
from webapp.cameras.auth import can_read_camera
from webapp.cameras.models import Camera, Gateway


class PeopleWithRole(permissions.BasePermission):
    """Signed-in people: viewers (and above) read, operators and admins write. Gateways have no access here."""

    message = "this needs a signed-in viewer to read, and an operator or admin to change anything"

    def has_permission(self, request, view) -> bool:
        if isinstance(request.user, Gateway):
            return False
        needed = Role.VIEWER if request.method in permissions.SAFE_METHODS else Role.OPERATOR
        held = role_of(request.user)
        return held is not None and held >= needed


class PeopleView(APIView):
    permission_classes = [PeopleWithRole]


def bad_field(field: str, message: str) -> exceptions.ValidationError:
    return exceptions.ValidationError({field: [message]})


def camera_with_weights(request, pk: int) -> Camera:
    """The camera `pk` with its active weights; a 404 for a person's camera of another site. (A gateway's own
    cameras are checked where gateways are let in, with a message naming the camera.)"""
    camera = get_object_or_404(Camera.objects.select_related("active_weights"), pk=pk)
    if not isinstance(request.user, Gateway) and not can_read_camera(request.user, camera):
        raise exceptions.NotFound()
    return camera


def absolute_url(request, name: str, *args) -> str:
    return request.build_absolute_uri(reverse(name, args=args))
