"""Reading: gateways and signed-in people read frames' statuses, counts and density maps, and cameras' count series."""

from __future__ import annotations

import io
import logging
from datetime import timedelta

import numpy as np
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.accounts.permissions import can_read_camera
from webapp.cameras.models import Camera
from webapp.ingest import series
from webapp.ingest.csv_export import CountsCSVRenderer
from webapp.ingest.models import Frame, Result
from webapp.ingest.privacy import WITHHELD, image_shown
from webapp.ingest.schemas import CountSeries, FrameDetail
from webapp.ingest.storage import (
    StorageUnavailable,
    read_media_file,
    unavailable_as_retryable,
)
from webapp.period_query import PeriodQuery

log = logging.getLogger(__name__)


def frame_url(request, frame: Frame, name: str) -> str:
    return request.build_absolute_uri(reverse(name, args=[frame.pk]))


def readable_frame(request, pk: int) -> Frame:
    frame = get_object_or_404(Frame.objects.select_related("camera", "result"), pk=pk)
    if not can_read_camera(request.user, frame.camera):
        raise exceptions.NotFound()
    return frame


class ReadView(APIView):
    """Readable by the camera's gateway or by a signed-in person."""

    permission_classes = [IsAuthenticated]


class FrameDetailView(ReadView):
    @extend_schema(responses=FrameDetail)
    def get(self, request, pk: int):
        frame = readable_frame(request, pk)
        body = {
            "id": frame.pk,
            "camera": frame.camera_id,
            "captured_at": frame.captured_at,
            "received_at": frame.received_at,
            "width": frame.width,
            "height": frame.height,
            "status": frame.status,
            "error": frame.error or None,
            "count": None,
            "zones": [],
            "model": None,
            "counted_on": "gateway" if frame.counted_on_gateway else "server",
            "links": {"image": frame_url(request, frame, "api-frame-image") if image_shown(frame) else None},
        }
        result = getattr(frame, "result", None)
        if result is not None:
            body["count"] = result.count
            body["zones"] = [
                {"zone": zone.zone_id, "name": zone.zone_name, "count": zone.count} for zone in result.zone_counts.all()
            ]
            body["model"] = {
                "name": result.model_name,
                "version": result.model_version,
                "inference_ms": result.inference_ms,
            }
            body["links"] |= {
                "density": frame_url(request, frame, "api-frame-density") if result.density else None,
                "density_values": frame_url(request, frame, "api-frame-density-values") if result.density else None,
                "heatmap": frame_url(request, frame, "api-frame-heatmap") if result.heatmap else None,
            }
        return Response(body)


NOT_KEPT = "this file is not kept (see the retention settings)"


class StorageUnreadable(exceptions.APIException):
    """The media storage cannot be read now (a bucket unreachable or throttling): 503 with Retry-After."""

    status_code = 503
    default_code = "storage_unavailable"
    wait = 30  # seconds, sent as Retry-After

    def __init__(self, reason: str) -> None:
        super().__init__(f"{reason}; try again later")


def stored_density(result: Result) -> tuple[np.ndarray, int]:
    """The result's density map (float32) and its stride; 404 when it is no longer kept or missing from storage."""
    if not result.density:
        raise exceptions.NotFound(NOT_KEPT)
    try:
        with np.load(io.BytesIO(read_media_file(result.density))) as stored:
            return stored["density"].astype(np.float32), int(stored["stride"])
    except FileNotFoundError as error:
        raise exceptions.NotFound("the frame's density map is missing from storage") from error
    except StorageUnavailable as error:
        raise StorageUnreadable(str(error)) from error


def _stored_file(field, content_type: str, filename: str) -> FileResponse:
    if not field:
        raise exceptions.NotFound(NOT_KEPT)
    try:
        with unavailable_as_retryable():
            handle = field.open("rb")
    except FileNotFoundError as error:
        raise exceptions.NotFound("the file is missing from storage") from error
    except StorageUnavailable as error:
        raise StorageUnreadable(str(error)) from error
    return FileResponse(handle, content_type=content_type, filename=filename)


class FrameImageView(ReadView):
    @extend_schema(responses={(200, "image/*"): OpenApiTypes.BINARY})
    def get(self, request, pk: int):
        frame = readable_frame(request, pk)
        if frame.image and not image_shown(frame):
            raise exceptions.NotFound(WITHHELD.format(frame=frame.pk))
        extension = frame.image.name.rsplit(".", 1)[-1] if frame.image else "jpg"
        content_type = {"jpg": "image/jpeg", "tif": "image/tiff"}.get(extension, f"image/{extension}")
        return _stored_file(frame.image, content_type, f"frame-{frame.pk}.{extension}")


def frame_result(request, pk: int):
    frame = readable_frame(request, pk)
    result = getattr(frame, "result", None)
    if result is None:
        raise exceptions.NotFound(f"frame {pk} is {frame.status}; it has no result yet")
    return frame, result


class FrameHeatmapView(ReadView):
    @extend_schema(responses={(200, "image/png"): OpenApiTypes.BINARY})
    def get(self, request, pk: int):
        frame, result = frame_result(request, pk)
        return _stored_file(result.heatmap, "image/png", f"heatmap-{frame.pk}.png")


class FrameDensityView(ReadView):
    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request, pk: int):
        frame, result = frame_result(request, pk)
        return _stored_file(result.density, "application/octet-stream", f"density-{frame.pk}.npz")


class FrameDensityValuesView(ReadView):
    """The density map as JSON (people per 8x8-pixel cell), for plots in the browser."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, pk: int):
        frame, result = frame_result(request, pk)
        density, stride = stored_density(result)
        return Response(
            {
                "frame": frame.pk,
                "stride": stride,
                "shape": list(density.shape),
                "count": result.count,
                "values": np.round(density.astype(np.float64), 5).tolist(),
            }
        )


class CameraCountsView(ReadView):
    """A camera's count series as JSON, or as CSV with `?format=csv` (or `Accept: text/csv`)."""

    renderer_classes = [JSONRenderer, CountsCSVRenderer]

    @extend_schema(
        parameters=[
            OpenApiParameter("from", OpenApiTypes.DATETIME, description="default: 24 hours before `to`"),
            OpenApiParameter("to", OpenApiTypes.DATETIME, description="default: now"),
            OpenApiParameter("bucket", OpenApiTypes.STR, enum=[*series.BUCKETS, "raw"], description="default raw"),
        ],
        responses={(200, "application/json"): CountSeries, (200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request, pk: int):
        camera = get_object_or_404(Camera.objects.select_related("site"), pk=pk)
        if not can_read_camera(request.user, camera):
            raise exceptions.NotFound()
        query = CountsQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        end = query.validated_data.get("to") or timezone.now()
        start = query.validated_data.get("from") or end - timedelta(hours=24)
        if start >= end:
            raise exceptions.ValidationError({"from": ["must be before `to`"]})
        bucket = query.validated_data.get("bucket", "raw")
        try:
            if bucket == "raw":
                series.refuse_where_aggregated(camera.pk, start, end, None)
                points = series.raw(series.samples(camera.pk, start, end, limit=series.MAX_RAW_POINTS), camera.zone)
            else:
                points = series.bucketed(camera.pk, start, end, series.BUCKETS[bucket], camera.zone)
        except series.SeriesRefused as error:
            raise exceptions.ValidationError({"bucket": [str(error)]}) from error
        zone = camera.zone
        response = Response(
            {
                "camera": camera.pk,
                "time_zone": camera.time_zone,
                "from": start.astimezone(zone),
                "to": end.astimezone(zone),
                "bucket": bucket,
                "points": points,
            }
        )
        if request.accepted_renderer.format == "csv":
            period = f"{start.astimezone(zone):%Y%m%dT%H%M}-{end.astimezone(zone):%Y%m%dT%H%M%z}"
            filename = f"camera-{camera.pk}-counts-{bucket}-{period}.csv"
            response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


class CountsQuery(PeriodQuery):
    bucket = serializers.ChoiceField(choices=[*series.BUCKETS, "raw"], required=False)
