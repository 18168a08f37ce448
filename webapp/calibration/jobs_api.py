"""REST API for calibration jobs under /api/v1/cameras/{id}/: starting and following calibration, adaptation and
recount jobs, the camera's weights versions and which one is active (and rolling back from it), and the active
version's ONNX for its gateway.

Signed-in people only (session auth with CSRF), except `weights.onnx`, which the camera's gateway fetches with its
token: viewers read, operators and admins write. Nothing here imports torch: the jobs run on the workers.
"""

from __future__ import annotations

import copy

from django.db import IntegrityError, transaction
from django.http import FileResponse, HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.audit.records import log_queryset_update
from webapp.calibration.adaptation import queue_adaptation
from webapp.calibration.api_access import PeopleView, absolute_url, bad_field, camera_with_weights
from webapp.calibration.models import (
    MIN_MARKED_FRAMES,
    AdaptationJob,
    CalibrationJob,
    MarkedFrame,
    RecountJob,
    WeightsVersion,
)
from webapp.calibration.queueing import enqueue_calibration, queue_recount
from webapp.cameras.auth import can_read_camera
from webapp.cameras.models import Camera, Gateway
from webapp.ingest.api import PeriodQuery


class CalibrationJobSerializer(serializers.ModelSerializer):
    switched = serializers.SerializerMethodField()
    version = serializers.SerializerMethodField()
    status_url = serializers.SerializerMethodField()

    class Meta:
        model = CalibrationJob
        fields = [
            "id",
            "status",
            "progress",
            "message",
            "held_out_mae_before",
            "held_out_mae_after",
            "switched",
            "version",
            "frames",
            "created_at",
            "started_at",
            "finished_at",
            "status_url",
        ]

    def get_switched(self, job: CalibrationJob) -> bool:
        return job.status == CalibrationJob.Status.SWITCHED

    def get_version(self, job: CalibrationJob) -> int | None:
        return job.result_version.number if job.result_version else None

    def get_status_url(self, job: CalibrationJob) -> str:
        return absolute_url(self.context["request"], "api-calibration", job.camera_id, job.pk)


class CalibrationListView(PeopleView):
    @extend_schema(responses={200: CalibrationJobSerializer(many=True)})
    def get(self, request, pk: int):
        jobs = CalibrationJob.objects.filter(camera=camera_with_weights(request, pk)).select_related("result_version")[
            :50
        ]
        return Response(CalibrationJobSerializer(jobs, many=True, context={"request": request}).data)

    @extend_schema(request=None, responses={202: CalibrationJobSerializer})
    def post(self, request, pk: int):
        """Start tuning the camera's weights on its marked frames (at least 6; 12 or more advised)."""
        camera = camera_with_weights(request, pk)
        marked = MarkedFrame.objects.filter(camera=camera).count()
        if marked < MIN_MARKED_FRAMES:
            raise exceptions.ValidationError(
                {
                    "detail": f"camera {camera.pk} has {marked} marked frames; calibration needs at least "
                    f"{MIN_MARKED_FRAMES} (12 or more advised)"
                }
            )
        CalibrationJob.fail_lost(camera)
        try:
            with transaction.atomic():
                job = CalibrationJob.objects.create(
                    camera=camera, created_by=request.user, frames=marked, message="waiting for a calibration worker"
                )
                transaction.on_commit(lambda: enqueue_calibration(job))
        except IntegrityError:
            active = CalibrationJob.objects.filter(camera=camera, status__in=CalibrationJob.ACTIVE).first()
            state, active_id = (active.status, active.pk) if active else ("running", None)
            return Response(
                {"detail": f"a calibration of camera {camera.pk} is already {state}", "id": active_id},
                status=status.HTTP_409_CONFLICT,
            )
        job.refresh_from_db()
        body = CalibrationJobSerializer(job, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["status_url"]})


class CalibrationDetailView(PeopleView):
    @extend_schema(responses={200: CalibrationJobSerializer})
    def get(self, request, pk: int, job: int):
        found = get_object_or_404(
            CalibrationJob.objects.select_related("result_version"), camera=camera_with_weights(request, pk), pk=job
        )
        return Response(CalibrationJobSerializer(found, context={"request": request}).data)


# ---- adaptation jobs -----------------------------------------------------------------------------------------------


class AdaptationJobSerializer(serializers.ModelSerializer):
    switched = serializers.SerializerMethodField()
    version = serializers.SerializerMethodField()
    recount_url = serializers.SerializerMethodField()
    status_url = serializers.SerializerMethodField()

    class Meta:
        model = AdaptationJob
        fields = [
            "id",
            "status",
            "progress",
            "message",
            "automatic",
            "frames",
            "mean_count_before",
            "mean_count_after",
            "novelty",
            "switched",
            "version",
            "recount_url",
            "created_at",
            "started_at",
            "finished_at",
            "status_url",
        ]

    def get_switched(self, job: AdaptationJob) -> bool:
        return job.status == AdaptationJob.Status.SWITCHED

    def get_version(self, job: AdaptationJob) -> int | None:
        return job.result_version.number if job.result_version else None

    def get_recount_url(self, job: AdaptationJob) -> str | None:
        return (
            absolute_url(self.context["request"], "api-recount", job.camera_id, job.recount_id)
            if job.recount_id
            else None
        )

    def get_status_url(self, job: AdaptationJob) -> str:
        return absolute_url(self.context["request"], "api-adaptation", job.camera_id, job.pk)


class AdaptationListView(PeopleView):
    @extend_schema(responses={200: AdaptationJobSerializer(many=True)})
    def get(self, request, pk: int):
        jobs = AdaptationJob.objects.filter(camera=camera_with_weights(request, pk)).select_related("result_version")[
            :50
        ]
        return Response(AdaptationJobSerializer(jobs, many=True, context={"request": request}).data)

    @extend_schema(request=None, responses={202: AdaptationJobSerializer})
    def post(self, request, pk: int):
        """Adapt the camera's default weights to its own stored frames, without labels (again: from the default)."""
        camera = camera_with_weights(request, pk)
        try:
            job = queue_adaptation(camera, created_by=request.user)
        except IntegrityError:
            active = AdaptationJob.objects.filter(camera=camera, status__in=AdaptationJob.ACTIVE).first()
            state, active_id = (active.status, active.pk) if active else ("running", None)
            return Response(
                {"detail": f"an adaptation of camera {camera.pk} is already {state}", "id": active_id},
                status=status.HTTP_409_CONFLICT,
            )
        job.refresh_from_db()
        body = AdaptationJobSerializer(job, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["status_url"]})


class AdaptationDetailView(PeopleView):
    @extend_schema(responses={200: AdaptationJobSerializer})
    def get(self, request, pk: int, job: int):
        found = get_object_or_404(
            AdaptationJob.objects.select_related("result_version"), camera=camera_with_weights(request, pk), pk=job
        )
        return Response(AdaptationJobSerializer(found, context={"request": request}).data)


# ---- weights versions ----------------------------------------------------------------------------------------------


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


# ---- recounts ------------------------------------------------------------------------------------------------------


class RecountRequestSerializer(PeriodQuery):
    pass


class RecountSerializer(serializers.ModelSerializer):
    status_url = serializers.SerializerMethodField()

    class Meta:
        model = RecountJob
        fields = [
            "id",
            "status",
            "progress",
            "message",
            "frames",
            "period_from",
            "period_to",
            "created_at",
            "finished_at",
            "status_url",
        ]

    def get_status_url(self, job: RecountJob) -> str:
        return absolute_url(self.context["request"], "api-recount", job.camera_id, job.pk)


class RecountListView(PeopleView):
    @extend_schema(request=RecountRequestSerializer, responses={202: RecountSerializer})
    def post(self, request, pk: int):
        """Recount the camera's frames captured in [from, to) with the weights it uses now."""
        camera = camera_with_weights(request, pk)
        period = RecountRequestSerializer(data=request.data)
        period.is_valid(raise_exception=True)
        start, end = period.validated_data.get("from"), period.validated_data.get("to")
        if start is None or end is None:
            raise bad_field("from" if start is None else "to", "this field is required (ISO 8601)")
        if start >= end:
            raise bad_field("from", "must be before `to`")
        job = queue_recount(camera, start, end, request.user, "waiting for a worker")
        job.refresh_from_db()
        body = RecountSerializer(job, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["status_url"]})


class RecountDetailView(PeopleView):
    @extend_schema(responses={200: RecountSerializer})
    def get(self, request, pk: int, job: int):
        found = get_object_or_404(RecountJob, camera=camera_with_weights(request, pk), pk=job)
        return Response(RecountSerializer(found, context={"request": request}).data)
