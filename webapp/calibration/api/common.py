"""What calibration's API views share: who may call them, the camera they act on, and the shape of their errors."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.urls import reverse
from rest_framework import exceptions
from rest_framework.views import APIView

from webapp.accounts.permissions import PeopleWithRole, can_read_camera
from webapp.cameras.models import Camera, Gateway


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
