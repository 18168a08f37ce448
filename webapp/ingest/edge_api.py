"""POST /api/v1/edge-results/: a gateway that counts frames itself (edge mode) sends what it counted, never the
frame: the count, the density map at 1/8 (float16 .npz, as the server stores its own), the model and the frame's
size. The server computes the zone counts from the map with its own zones, renders the heatmap and raises alerts,
exactly as for a frame it counted; the result says which model counted it."""

from __future__ import annotations

import hashlib
import io
import math
import zipfile

import numpy as np
from django.db import IntegrityError, transaction
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from counting.specs import OUTPUT_STRIDE
from counting.zones import zone_counts
from webapp.cameras.auth import GatewayTokenAuthentication, IsGateway
from webapp.cameras.models import Camera, Gateway
from webapp.ingest.api import accepted_body, earlier_frame, idempotency_key
from webapp.ingest.models import Frame
from webapp.ingest.results import Counted, store_result

EDGE_FIELDS = {"camera", "captured_at", "count", "density", "width", "height", "model", "model_version", "inference_ms"}
MAX_DENSITY_BYTES = 4 * 1024 * 1024
MAX_SIDE = 16_384
# The count the gateway states and its map's sum: float16 storage rounds each cell, so allow a little.
COUNT_TOLERANCE = 0.01


class EdgeResultSerializer(serializers.Serializer):
    camera = serializers.IntegerField(min_value=1)
    captured_at = serializers.DateTimeField()
    count = serializers.FloatField(min_value=0)
    density = serializers.FileField(help_text="npz with `density`: float16 at 1/8 of the frame, ceil(h/8) x ceil(w/8)")
    width = serializers.IntegerField(min_value=1, max_value=MAX_SIDE)
    height = serializers.IntegerField(min_value=1, max_value=MAX_SIDE)
    model = serializers.CharField(max_length=40, help_text="the architecture that counted, e.g. skynet-count")
    model_version = serializers.CharField(max_length=100)
    inference_ms = serializers.FloatField(min_value=0)


def read_density(upload, height: int, width: int) -> tuple[np.ndarray, bytes]:
    """The map from the upload, checked: readable, the frame's 1/8 grid, finite and not negative."""
    data = upload.read(MAX_DENSITY_BYTES + 1)
    if len(data) > MAX_DENSITY_BYTES:
        raise exceptions.ValidationError({"density": [f"over {MAX_DENSITY_BYTES:,} bytes"]})
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as stored:
            density = stored["density"].astype(np.float32)
    except (ValueError, KeyError, OSError, zipfile.BadZipFile) as error:
        raise exceptions.ValidationError({"density": [f"not an .npz with a `density` array: {error}"]}) from error
    expected = (math.ceil(height / OUTPUT_STRIDE), math.ceil(width / OUTPUT_STRIDE))
    if density.shape != expected:
        raise exceptions.ValidationError(
            {"density": [f"shape {density.shape} does not fit a {width}x{height} frame at 1/8: {expected}"]}
        )
    if not np.isfinite(density).all() or (density < 0).any():
        raise exceptions.ValidationError({"density": ["values must be finite and not negative"]})
    return density, data


class EdgeResultView(APIView):
    authentication_classes = [GatewayTokenAuthentication]
    permission_classes = [IsGateway]
    parser_classes = [MultiPartParser]

    @extend_schema(
        request={"multipart/form-data": EdgeResultSerializer},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description="a result re-sent with the same key returns the first one instead of a duplicate",
            )
        ],
        responses={201: OpenApiTypes.OBJECT},
    )
    def post(self, request):
        gateway: Gateway = request.user
        key = idempotency_key(request)
        if earlier := earlier_frame(gateway, key):
            return _replay(request, earlier)
        unknown = sorted(set(request.data.keys()) - EDGE_FIELDS)
        if unknown:
            raise exceptions.ValidationError({name: ["unknown field"] for name in unknown})
        sent = EdgeResultSerializer(data=request.data)
        sent.is_valid(raise_exception=True)
        fields = sent.validated_data
        camera = Camera.objects.filter(pk=fields["camera"]).first()
        if camera is None or not gateway.owns(camera):
            raise exceptions.PermissionDenied(f"camera {fields['camera']} is not one of this gateway's")
        density, raw = read_density(fields["density"], fields["height"], fields["width"])
        if abs(float(density.sum()) - fields["count"]) > max(0.5, COUNT_TOLERANCE * fields["count"]):
            raise exceptions.ValidationError(
                {"count": [f"{fields['count']:.2f} is not the map's sum, {density.sum():.2f}"]}
            )

        zones = list(camera.zones.all())
        try:
            with transaction.atomic():
                frame = Frame.objects.create(
                    camera=camera,
                    gateway=gateway,
                    captured_at=fields["captured_at"],
                    received_at=timezone.now(),
                    enqueued_at=timezone.now(),  # nothing to send to the workers: counted already
                    content_hash=hashlib.sha256(raw).hexdigest(),
                    width=fields["width"],
                    height=fields["height"],
                    idempotency_key=key,
                    counted_on_gateway=True,
                )
                store_result(
                    frame,
                    Counted(
                        count=fields["count"],
                        density=density,
                        zone_counts=zone_counts(density, {zone.pk: zone.polygon for zone in zones}),
                        zone_names={zone.pk: zone.name for zone in zones},
                        model_name=fields["model"],
                        model_version=fields["model_version"],
                        inference_ms=fields["inference_ms"],
                    ),
                )
        except IntegrityError:
            earlier = earlier_frame(gateway, key)
            if earlier is None:
                raise
            return _replay(request, earlier)
        return Response(accepted_body(request, frame) | {"status": Frame.Status.DONE}, status=status.HTTP_201_CREATED)


def _replay(request, frame: Frame) -> Response:
    return Response(
        accepted_body(request, frame), status=status.HTTP_201_CREATED, headers={"Idempotent-Replayed": "true"}
    )
