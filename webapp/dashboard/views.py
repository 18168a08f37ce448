"""Operator pages: the camera list and a camera's latest density heatmap and count over time."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render

from webapp.cameras.models import Camera
from webapp.ingest.models import Frame


@login_required
def camera_list(request):
    rows = [{"camera": camera, "result": camera.latest_result()} for camera in Camera.objects.select_related("site")]
    return render(request, "dashboard/camera_list.html", {"rows": rows})


@login_required
def camera_detail(request, pk: int):
    camera = get_object_or_404(Camera.objects.select_related("site"), pk=pk)
    result = camera.latest_result()
    waiting = camera.frames.exclude(status__in=[Frame.Status.DONE, Frame.Status.FAILED]).count()
    return render(
        request,
        "dashboard/camera_detail.html",
        {"camera": camera, "result": result, "zones": camera.zones.all(), "waiting": waiting},
    )
