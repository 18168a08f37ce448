"""What calibration's API views share: who may call them, the camera they act on, the shape of their errors, and the
answers to a job asked for (accepted, or one already active)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.urls import reverse
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
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


def job_accepted(request, job, serializer_class: type[serializers.Serializer]) -> Response:
    """202 with the queued `job` as `serializer_class` shows it (read back: its fields as stored), and its status URL
    in `Location`."""
    job.refresh_from_db()
    body = serializer_class(job, context={"request": request}).data
    return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["status_url"]})


def job_already_active(job_model, camera: Camera, what: str) -> Response:
    """409: a job of `job_model` (`what`, as in "a calibration") is already queued or running for `camera`; its id,
    or None when it ended in the meantime."""
    active = job_model.objects.filter(camera=camera, status__in=job_model.ACTIVE).first()
    state, active_id = (active.status, active.pk) if active else ("running", None)
    return Response(
        {"detail": f"{what} of camera {camera.pk} is already {state}", "id": active_id},
        status=status.HTTP_409_CONFLICT,
    )
