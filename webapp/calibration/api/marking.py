"""Marking: marked frames and their images, suggested frames to mark, and the model's head proposals for a frame."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.response import Response

from counting.peaks import head_proposals
from webapp.calibration.api.common import PeopleView, absolute_url, bad_field, camera_with_weights
from webapp.calibration.models import (
    MarkedFrame,
    validate_points,
)
from webapp.calibration.suggestions import suggested_frames
from webapp.cameras.models import Camera
from webapp.ingest.api.reading import frame_result, stored_density
from webapp.ingest.models import Frame
from webapp.ingest.privacy import is_blurred
from webapp.ingest.uploads import UploadRejected, check_image

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
