"""REST API of calibration under /api/v1/cameras/{id}/ and /api/v1/frames/{id}/.

Marking: marked frames and their images, suggested frames to mark, and the model's head proposals for a frame.
Jobs: starting and following calibration, adaptation and recount jobs, the camera's weights versions and which one is
active (and rolling back from it), and the active version's ONNX for its gateway.

Signed-in people only (session auth with CSRF), except `weights.onnx`, which the camera's gateway fetches with its
token: viewers read, operators and admins write. Nothing here imports torch: the jobs run on the workers.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.http import FileResponse, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from counting.peaks import head_proposals
from webapp.accounts.permissions import PeopleWithRole, can_read_camera
from webapp.audit_records import log_queryset_update
from webapp.calibration.adaptation import queue_adaptation
from webapp.calibration.models import (
    MIN_MARKED_FRAMES,
    AdaptationJob,
    CalibrationJob,
    MarkedFrame,
    RecountJob,
    WeightsVersion,
    validate_points,
)
from webapp.calibration.queueing import enqueue_calibration, queue_recount
from webapp.calibration.suggestions import suggested_frames
from webapp.cameras.models import Camera, Gateway
from webapp.ingest.api import frame_result, stored_density
from webapp.ingest.models import Frame
from webapp.ingest.privacy import is_blurred
from webapp.ingest.uploads import UploadRejected, check_image
from webapp.period_query import PeriodQuery


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


MARKED_FIELDS = {"frame", "points", "image"}
# Heads cannot be marked on a blurred frame (webapp.ingest.privacy), and a marking keeps a copy of its image, shown
# to whoever marks: a camera that blurs heads lends none of its frames.
BLURRED_NOT_MARKED = (
    "frame {frame} is kept with heads blurred: heads cannot be marked on it. Mark a frame counted while blurring was "
    "off, or upload an image of the camera to mark (multipart `image`)"
)
CAMERA_BLURS = (
    "camera {camera} blurs heads in its frames, so none of them is copied for marking. Upload an image of the camera "
    "to mark (multipart `image`), or turn its blur_heads setting off while the frames to mark are counted"
)


def _points(raw: object, width: int, height: int) -> list[list[float]]:
    try:
        return validate_points(raw, width, height)
    except DjangoValidationError as error:
        raise bad_field("points", error.messages[0]) from error


class MarkedFrameSerializer(serializers.ModelSerializer):
    image_url = serializers.SerializerMethodField()
    marked_by = serializers.SerializerMethodField()

    class Meta:
        model = MarkedFrame
        fields = ["id", "frame", "image_url", "width", "height", "points", "marked_by", "marked_at"]

    def get_image_url(self, marked: MarkedFrame) -> str:
        return absolute_url(self.context["request"], "api-marked-frame-image", marked.camera_id, marked.pk)

    def get_marked_by(self, marked: MarkedFrame) -> str | None:
        return marked.marked_by.get_username() if marked.marked_by else None


class MarkedFrameCreateSerializer(serializers.Serializer):
    frame = serializers.IntegerField(required=False, help_text="an ingest frame of this camera; its image is copied")
    image = serializers.FileField(required=False, help_text="multipart: an image that is not an uploaded frame")
    points = serializers.JSONField(help_text="[[x, y], ...] in pixels of the image (a JSON string in multipart)")


class PointsSerializer(serializers.Serializer):
    points = serializers.JSONField(help_text="[[x, y], ...] in pixels of the marked frame's image")


def _frame_image(camera: Camera, frame_id: object) -> tuple[Frame, ContentFile]:
    """The camera's frame `frame_id` and a copy of its stored image, or a 400 saying why not."""
    if not isinstance(frame_id, int) or isinstance(frame_id, bool):
        raise bad_field("frame", "a frame id (integer)")
    frame = Frame.objects.filter(pk=frame_id).first()
    if frame is None:
        raise bad_field("frame", f"frame {frame_id} does not exist")
    if frame.camera_id != camera.pk:
        raise bad_field("frame", f"frame {frame_id} is a frame of camera {frame.camera_id}, not of camera {camera.pk}")
    if MarkedFrame.objects.filter(frame=frame).exists():
        raise bad_field("frame", f"frame {frame_id} is marked already; edit that marking instead")
    if not frame.image:
        raise bad_field("frame", f"frame {frame_id}'s image is no longer kept (retention); mark another frame")
    if is_blurred(frame.image):
        raise bad_field("frame", BLURRED_NOT_MARKED.format(frame=frame_id))
    if camera.blur_heads:
        raise bad_field("frame", CAMERA_BLURS.format(camera=camera.pk))
    try:
        with frame.image.open("rb") as handle:
            data = handle.read()
    except FileNotFoundError as error:
        raise bad_field("frame", f"frame {frame_id}'s image is missing from storage") from error
    return frame, ContentFile(data, name=Path(frame.image.name).name)


class MarkedFrameListView(PeopleView):
    parser_classes = [JSONParser, MultiPartParser]

    @extend_schema(responses={200: MarkedFrameSerializer(many=True)})
    def get(self, request, pk: int):
        camera = camera_with_weights(request, pk)
        marked = MarkedFrame.objects.filter(camera=camera).select_related("marked_by")
        return Response(MarkedFrameSerializer(marked, many=True, context={"request": request}).data)

    @extend_schema(
        request={"application/json": MarkedFrameCreateSerializer, "multipart/form-data": MarkedFrameCreateSerializer},
        responses={201: MarkedFrameSerializer},
    )
    def post(self, request, pk: int):
        """JSON `{"frame": id, "points": [[x, y], ...]}` copies that frame's image; multipart `image` + `points`
        (a JSON string) stores an image that was never uploaded as a frame. Points are in pixels of the stored
        image (which may be smaller than the frame once retention downscaled it: see `width`, `height`)."""
        camera = camera_with_weights(request, pk)
        unknown = sorted(set(request.data.keys()) - MARKED_FIELDS)
        if unknown:
            raise exceptions.ValidationError({name: ["unknown field"] for name in unknown})
        if ("frame" in request.data) == ("image" in request.data):
            raise bad_field(
                "frame", "send either `frame` (an uploaded frame's id) or `image` (a file), not both or neither"
            )
        raw_points = request.data.get("points")
        if raw_points is None:
            raise bad_field("points", "this field is required (a list of [x, y]; [] for a frame with nobody in it)")
        if request.content_type.startswith("multipart/"):  # form fields are strings: the points come as JSON text
            try:
                raw_points = json.loads(raw_points)
            except ValueError as error:
                raise bad_field("points", f"not JSON: {error}") from error
        if "frame" in request.data:
            frame, upload = _frame_image(camera, request.data["frame"])
        else:
            frame, upload = None, request.data["image"]
        try:
            image = check_image(upload, settings.CROWDSCOPE_MAX_UPLOAD_BYTES, settings.CROWDSCOPE_MAX_PIXELS)
        except UploadRejected as rejected:
            raise bad_field("image" if frame is None else "frame", rejected.message) from rejected
        marked = MarkedFrame(
            camera=camera,
            frame=frame,
            width=image.width,
            height=image.height,
            points=_points(raw_points, image.width, image.height),
            marked_by=request.user,
            marked_at=timezone.now(),
        )
        marked.image.save(f"marked.{image.extension}", ContentFile(image.data), save=False)
        try:
            marked.save()
        except IntegrityError as error:
            # The same frame raced in from a second request: keep the first marking, drop this copy's file.
            marked.image.delete(save=False)
            raise bad_field(
                "frame", f"frame {frame.pk if frame else ''} is marked already; edit that marking"
            ) from error
        body = MarkedFrameSerializer(marked, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED)


def _marked(request, camera_pk: int, pk: int) -> MarkedFrame:
    camera = camera_with_weights(request, camera_pk)
    return get_object_or_404(MarkedFrame.objects.select_related("marked_by"), camera=camera, pk=pk)


class MarkedFrameDetailView(PeopleView):
    @extend_schema(responses={200: MarkedFrameSerializer})
    def get(self, request, pk: int, mid: int):
        return Response(MarkedFrameSerializer(_marked(request, pk, mid), context={"request": request}).data)

    @extend_schema(request=PointsSerializer, responses={200: MarkedFrameSerializer})
    def put(self, request, pk: int, mid: int):
        """Replace the points; records who edited them and when."""
        marked = _marked(request, pk, mid)
        unknown = sorted(set(request.data.keys()) - {"points"})
        if unknown:
            raise exceptions.ValidationError({name: ["unknown field; only points can be edited"] for name in unknown})
        if "points" not in request.data:
            raise bad_field("points", "this field is required")
        marked.points = _points(request.data["points"], marked.width, marked.height)
        marked.marked_by, marked.marked_at = request.user, timezone.now()
        marked.save(update_fields=["points", "marked_by", "marked_at"])
        return Response(MarkedFrameSerializer(marked, context={"request": request}).data)

    @extend_schema(request=PointsSerializer, responses={200: MarkedFrameSerializer})
    def patch(self, request, pk: int, mid: int):
        return self.put(request, pk, mid)

    @extend_schema(responses={204: None})
    def delete(self, request, pk: int, mid: int):
        """Delete the marking and its image copy. Weights versions tuned on it keep their measured figures."""
        marked = _marked(request, pk, mid)
        image = marked.image
        with transaction.atomic():
            marked.delete()
            transaction.on_commit(lambda: image.delete(save=False))
        return Response(status=status.HTTP_204_NO_CONTENT)


class MarkedFrameImageView(PeopleView):
    @extend_schema(responses={(200, "image/*"): OpenApiTypes.BINARY})
    def get(self, request, pk: int, mid: int):
        marked = _marked(request, pk, mid)
        extension = marked.image.name.rsplit(".", 1)[-1]
        content_type = {"jpg": "image/jpeg", "tif": "image/tiff"}.get(extension, f"image/{extension}")
        try:
            handle = marked.image.open("rb")
        except FileNotFoundError as error:
            raise exceptions.NotFound("the marked frame's image is missing from storage") from error
        return FileResponse(handle, content_type=content_type, filename=f"marked-{marked.pk}.{extension}")


# ---- frames to mark, and proposals ---------------------------------------------------------------------------------


class CalibrationFramesView(PeopleView):
    @extend_schema(
        parameters=[OpenApiParameter("limit", OpenApiTypes.INT, description="at most this many (1..100, default 20)")],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request, pk: int):
        """Done frames of the camera not yet marked, spread over the time of day and over the count range (see
        `webapp.calibration.suggestions.suggested_frames`)."""
        camera = camera_with_weights(request, pk)
        try:
            limit = int(request.query_params.get("limit", 20))
        except ValueError as error:
            raise bad_field("limit", "an integer") from error
        if not 1 <= limit <= 100:
            raise bad_field("limit", "between 1 and 100")
        frames = [
            {
                "frame": frame.pk,
                "image_url": absolute_url(request, "api-frame-image", frame.pk),
                "captured_at": frame.captured_at,
                "count": frame.result.count,
                "width": frame.width,
                "height": frame.height,
            }
            for frame in suggested_frames(camera, limit)
        ]
        return Response({"camera": camera.pk, "frames": frames})


class FrameProposalsView(PeopleView):
    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, pk: int):
        """The model's head proposals: local peaks of the frame's stored density map, as many as it counted, in
        pixels of the frame as uploaded (`width` x `height`)."""
        frame, result = frame_result(request, pk)
        density, _ = stored_density(result)
        points = head_proposals(density, frame.width, frame.height, result.count)
        return Response(
            {
                "frame": frame.pk,
                "width": frame.width,
                "height": frame.height,
                "count": result.count,
                "points": np.round(points, 1).tolist(),
            }
        )


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
