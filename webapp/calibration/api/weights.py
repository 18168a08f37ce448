"""A camera's weights versions: which one is active, switching and rolling back, and the active version's ONNX for its
gateway."""

from __future__ import annotations

import copy

from django.http import FileResponse, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.accounts.permissions import can_read_camera
from webapp.audit_records import log_queryset_update
from webapp.calibration.api.common import PeopleView, bad_field, camera_with_weights
from webapp.calibration.models import (
    WeightsVersion,
)
from webapp.cameras.models import Camera, Gateway


class WeightsVersionSerializer(serializers.ModelSerializer):
    base = serializers.SerializerMethodField()
    frames_used = serializers.SerializerMethodField()
    created_by = serializers.SerializerMethodField()
    label = serializers.CharField(read_only=True)
    summary = serializers.CharField(read_only=True)

    class Meta:
        model = WeightsVersion
        fields = [
            "id",
            "number",
            "kind",
            "label",
            "summary",
            "arch",
            "base",
            "frames_used",
            "held_out_mae_before",
            "held_out_mae_after",
            "held_out_frames",
            "folds",
            "adapted_frames",
            "frames_from",
            "frames_to",
            "mean_count_before",
            "mean_count_after",
            "rule",
            "novelty",
            "strength",
            "created_by",
            "created_at",
        ]

    def get_base(self, version: WeightsVersion) -> int | None:
        return version.base.number if version.base else None

    def get_frames_used(self, version: WeightsVersion) -> list[int]:
        return sorted(marked.pk for marked in version.frames_used.all())

    def get_created_by(self, version: WeightsVersion) -> str | None:
        return version.created_by.get_username() if version.created_by else None


class ActivateSerializer(serializers.Serializer):
    version = serializers.IntegerField(allow_null=True, help_text="a weights version id of this camera; null: default")


def rollback_target(camera: Camera) -> WeightsVersion | None:
    """What Roll back switches `camera` to: the version numbered just below the one in use (the weights it used
    before a new version switched it), else the default weights (None)."""
    if camera.active_weights is None:
        return None
    return camera.weights_versions.filter(number__lt=camera.active_weights.number).order_by("-number").first()


def weights_body(camera: Camera) -> dict:
    """The camera's versions, the one in use, and where Roll back would take it (null while the default is in use;
    `version` null: to the default weights)."""
    versions = camera.weights_versions.select_related("base", "created_by", "camera__site").prefetch_related(
        "frames_used"
    )
    rollback = None
    if camera.active_weights_id is not None:
        target = rollback_target(camera)
        rollback = {
            "version": target.pk if target else None,
            "label": target.label if target else "the default weights",
        }
    return {
        "camera": camera.pk,
        "active": camera.active_weights_id,
        "default": {"arch": camera.counting_model, "active": camera.active_weights_id is None},
        "rollback": rollback,
        "versions": WeightsVersionSerializer(versions, many=True).data,
    }


class WeightsView(PeopleView):
    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, pk: int):
        """The camera's weights versions, which one counts its frames (`active`; null: the default weights)."""
        return Response(weights_body(camera_with_weights(request, pk)))


class ActivateWeightsView(PeopleView):
    @extend_schema(request=ActivateSerializer, responses={200: OpenApiTypes.OBJECT})
    def post(self, request, pk: int):
        """Count the camera's frames from now on with version `version` (any earlier one), or the default (null)."""
        camera = camera_with_weights(request, pk)
        if "version" not in request.data:
            raise bad_field("version", "this field is required (a version id, or null for the default weights)")
        chosen = ActivateSerializer(data=request.data)
        chosen.is_valid(raise_exception=True)
        version_id = chosen.validated_data["version"]
        if version_id is not None and not camera.weights_versions.filter(pk=version_id).exists():
            raise bad_field("version", f"weights version {version_id} is not one of camera {camera.pk}'s")
        before = copy.copy(camera)
        Camera.objects.filter(pk=camera.pk).update(active_weights_id=version_id)
        camera.refresh_from_db()
        log_queryset_update(before, camera, ["active_weights"])
        return Response(weights_body(camera))


class RollbackWeightsView(PeopleView):
    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT})
    def post(self, request, pk: int):
        """Switch the camera back from the version in use to the one numbered just below it, or to the default
        weights when there is none (what `rollback` of the weights says). Counts already made keep their weights;
        recount a period to redo them. 400 while the default weights are in use; 409 when the camera switched since
        this request read it."""
        camera = camera_with_weights(request, pk)
        if camera.active_weights is None:
            raise exceptions.ValidationError(
                {"detail": f"camera {camera.pk} counts with the default weights: there is nothing to roll back"}
            )
        target, before = rollback_target(camera), copy.copy(camera)
        # Only from the version read above: a switch made meanwhile by someone else is not undone blindly.
        if not Camera.objects.filter(pk=camera.pk, active_weights=camera.active_weights).update(active_weights=target):
            return Response(
                {"detail": f"camera {camera.pk}'s weights changed meanwhile; look again before rolling back"},
                status=status.HTTP_409_CONFLICT,
            )
        camera.refresh_from_db()
        log_queryset_update(before, camera, ["active_weights"])
        return Response(weights_body(camera))


class GatewayOnnxView(APIView):
    """The camera's active calibrated weights as ONNX, for its gateway's agent."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        parameters=[OpenApiParameter("If-None-Match", OpenApiTypes.STR, OpenApiParameter.HEADER)],
        responses={
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            304: None,
            404: OpenApiTypes.OBJECT,
        },
    )
    def get(self, request, pk: int):
        """200 with the ONNX bytes, `X-Weights-Version: cam<camera>-v<N>` and `ETag: "cam<camera>-v<N>"`; 304 when
        `If-None-Match` names that ETag; 404 when the camera counts with the default weights."""
        camera = camera_with_weights(request, pk)
        if isinstance(request.user, Gateway) and not request.user.owns(camera):
            raise exceptions.PermissionDenied(f"camera {camera.pk} is not one of this gateway's")
        if not can_read_camera(request.user, camera):
            raise exceptions.PermissionDenied()
        version = camera.active_weights
        if version is None:
            raise exceptions.NotFound(f"camera {camera.pk} counts with the default weights: no calibrated copy")
        if not version.onnx:
            raise exceptions.NotFound(f"weights {version.label} have no ONNX export")
        etag = f'"{version.label}"'
        headers = {"X-Weights-Version": version.label, "ETag": etag}
        if etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]:
            response = HttpResponse(status=status.HTTP_304_NOT_MODIFIED)
        else:
            try:
                handle = version.onnx.open("rb")
            except FileNotFoundError as error:
                raise exceptions.NotFound(f"the ONNX file of {version.label} is missing from storage") from error
            response = FileResponse(handle, content_type="application/octet-stream", filename=f"{version.label}.onnx")
        for name, value in headers.items():
            response[name] = value
        return response
