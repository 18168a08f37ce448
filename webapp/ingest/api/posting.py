"""Posting: the two endpoints gateways post to, on one ingest path.

- `POST /api/v1/frames/`: a frame to count; stored, then counted by a worker (202).
- `POST /api/v1/edge-results/`: a gateway that counts frames itself (edge mode) sends what it counted, never the
  frame: the count, the density map at 1/8 (float16 .npz, as the server stores its own), the model and the frame's
  size. The server computes the zone counts from the map with its own zones, renders the heatmap and raises alerts,
  exactly as for a frame it counted; the result says which model counted it (201).

Both share `GatewayPostView.post`: an `Idempotency-Key` already used by this gateway answers with the first frame
(header `Idempotent-Replayed: true`) and stores nothing; fields the endpoint does not know are refused; the camera must
be one of the gateway's; a parallel retry that loses the race on the key is answered like a replay.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import zipfile
from datetime import UTC, datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from counting.specs import OUTPUT_STRIDE
from webapp.accounts.permissions import IsGateway
from webapp.cameras.auth import GatewayTokenAuthentication
from webapp.cameras.models import Camera, Gateway
from webapp.ingest.models import Frame
from webapp.ingest.queueing import enqueue_count
from webapp.ingest.results import Counted, store_result
from webapp.ingest.storage import (
    StorageUnavailable,
    free_media_bytes,
    write_media_file,
)
from webapp.ingest.uploads import UploadRejected, check_image
from webapp.metric_events import count_event

log = logging.getLogger(__name__)


# Room for the multipart boundaries and the small fields around the image.
MULTIPART_OVERHEAD = 64 * 1024
MAX_DENSITY_BYTES = 4 * 1024 * 1024
MAX_FRAME_SIDE = 16_384
# The count the gateway states and its map's sum: float16 storage rounds each cell, so allow a little.
COUNT_TOLERANCE = 0.01


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


class StorageFull(exceptions.APIException):
    """Nothing was stored: the gateway keeps what it sent and tries again (503 with Retry-After). The storage is full,
    or (a bucket) over quota, throttling or unreachable."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "storage_full"
    default_detail = "the server's storage is full: nothing was stored; send it again later"
    wait = 60  # seconds, sent as Retry-After


def check_free_space() -> None:
    """Refuse new data (503) while the local media disk has less than CROWDSCOPE_MIN_FREE_MB free: the rest is kept
    for the heatmaps and density maps of frames already accepted, so that those are counted rather than stuck. A
    bucket has no free space to read: it refuses the write itself, answered alike (see GatewayPostView.post)."""
    free, reserve = free_media_bytes(), settings.CROWDSCOPE_MIN_FREE_MB * 2**20
    if free is not None and free < reserve:
        log.error("media storage: %d bytes free, under the reserve of %d; uploads are refused with 503", free, reserve)
        raise StorageFull(
            f"the server's storage has {free / 2**20:.0f} MB free, under its reserve of "
            f"{settings.CROWDSCOPE_MIN_FREE_MB} MB: nothing was stored; send it again later"
        )


class FrameUploadSerializer(serializers.Serializer):
    camera = serializers.IntegerField(min_value=1)
    image = serializers.FileField(allow_empty_file=True)
    captured_at = serializers.DateTimeField(
        required=False, default_timezone=UTC, help_text="ISO 8601; without a zone it is UTC"
    )


class EdgeResultSerializer(serializers.Serializer):
    camera = serializers.IntegerField(min_value=1)
    captured_at = serializers.DateTimeField()
    count = serializers.FloatField(min_value=0)
    density = serializers.FileField(help_text="npz with `density`: float16 at 1/8 of the frame, ceil(h/8) x ceil(w/8)")
    width = serializers.IntegerField(min_value=1, max_value=MAX_FRAME_SIDE)
    height = serializers.IntegerField(min_value=1, max_value=MAX_FRAME_SIDE)
    model = serializers.CharField(max_length=40, help_text="the architecture that counted, e.g. skynet-count")
    model_version = serializers.CharField(max_length=100)
    inference_ms = serializers.FloatField(min_value=0)


class FrameAcceptedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    camera = serializers.IntegerField()
    status = serializers.CharField()
    captured_at = serializers.DateTimeField()
    received_at = serializers.DateTimeField()
    status_url = serializers.URLField()


def idempotency_key(request) -> str | None:
    key = request.headers.get("Idempotency-Key") or None
    if key is not None and len(key) > 200:
        raise exceptions.ValidationError({"Idempotency-Key": ["at most 200 characters"]})
    return key


def earlier_frame(gateway: Gateway, key: str | None) -> Frame | None:
    """The frame this gateway already sent with `key`: a retry answers with it instead of storing a copy."""
    return Frame.objects.filter(gateway=gateway, idempotency_key=key).first() if key else None


def check_capture_time(captured_at: datetime | None) -> None:
    """Refuse a capture time further ahead of the server's clock than the allowed skew, or older than gateways may
    back-fill (settings CROWDSCOPE_MAX_CLOCK_SKEW_SECONDS, CROWDSCOPE_MAX_FRAME_AGE_DAYS, 0: no age limit)."""
    if captured_at is None:
        return
    now = timezone.now()
    skew, max_age = settings.CROWDSCOPE_MAX_CLOCK_SKEW_SECONDS, settings.CROWDSCOPE_MAX_FRAME_AGE_DAYS
    if captured_at > now + timedelta(seconds=skew):
        problem = f"is more than {skew} s ahead of the server's clock ({now.isoformat(timespec='seconds')})"
    elif max_age and captured_at < now - timedelta(days=max_age):
        problem = f"is older than {max_age} days"
    else:
        return
    raise exceptions.ValidationError({"captured_at": [f"{captured_at.isoformat()} {problem}"]})


def accepted_body(request, frame: Frame) -> dict:
    return {
        "id": frame.pk,
        "camera": frame.camera_id,
        "status": frame.status,
        "captured_at": frame.captured_at,
        "received_at": frame.received_at,
        "status_url": request.build_absolute_uri(reverse("api-frame", args=[frame.pk])),
    }


def idempotency_schema(what: str, response_status: int) -> dict:
    """The OpenAPI parameters and answer both endpoints share: the Idempotency-Key header and the accepted frame."""
    return {
        "parameters": [
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description=f"a {what} re-sent with the same key returns the first frame instead of a duplicate",
            )
        ],
        "responses": {response_status: FrameAcceptedSerializer},
    }


class GatewayPostView(APIView):
    """A gateway's POST: key, fields, camera, then `store`; subclasses say what they take and how they store it."""

    authentication_classes = [GatewayTokenAuthentication]
    permission_classes = [IsGateway]
    parser_classes = [MultiPartParser]
    form: type[serializers.Serializer]
    stored_status: int  # the answer's status, for the first delivery and its replays alike

    def post(self, request):
        gateway: Gateway = request.user
        self.check_size(request)
        key = idempotency_key(request)
        if earlier := earlier_frame(gateway, key):
            return self._replay(request, earlier)
        unknown = sorted(set(request.data.keys()) - set(self.form().fields))
        if unknown:
            raise exceptions.ValidationError({name: ["unknown field"] for name in unknown})
        sent = self.form(data=request.data)
        sent.is_valid(raise_exception=True)
        check_capture_time(sent.validated_data.get("captured_at"))
        camera = gateway.cameras.filter(pk=sent.validated_data["camera"]).first()  # one query: exists and is ours
        if camera is None:
            raise exceptions.PermissionDenied(f"camera {sent.validated_data['camera']} is not one of this gateway's")
        check_free_space()
        try:
            frame = self.store(gateway, camera, sent.validated_data, key)
        except StorageUnavailable as error:
            log.error("camera %s: %s (%s); the upload was refused with 503", camera.pk, error, error.__cause__)
            raise StorageFull(f"{error}: nothing was stored; send it again later") from error
        except IntegrityError:
            # The same key raced in from a parallel retry: the first frame stands.
            earlier = earlier_frame(gateway, key)
            if earlier is None:
                raise
            return self._replay(request, earlier)
        count_event("crowdscope_frames_received", camera_id=camera.pk)
        return Response(accepted_body(request, frame), status=self.stored_status)

    too_large: str  # the 413's message, formatted with `limit`

    def max_file_bytes(self) -> int:
        """The largest file the endpoint takes; the body may add the multipart overhead around it."""
        raise NotImplementedError

    def check_size(self, request) -> None:
        """Refuse a body too large from its declared length, before reading it."""
        limit = self.max_file_bytes()
        if int(request.META.get("CONTENT_LENGTH") or 0) > limit + MULTIPART_OVERHEAD:
            raise PayloadTooLarge(self.too_large.format(limit=limit))

    def store(self, gateway: Gateway, camera: Camera, fields: dict, key: str | None) -> Frame:
        """Store what was sent, with `key`, and return its frame; IntegrityError when the key is already taken."""
        raise NotImplementedError

    def _replay(self, request, frame: Frame) -> Response:
        return Response(
            accepted_body(request, frame), status=self.stored_status, headers={"Idempotent-Replayed": "true"}
        )


class FrameUploadView(GatewayPostView):
    form = FrameUploadSerializer
    stored_status = status.HTTP_202_ACCEPTED
    too_large = "the upload is over the limit of {limit:,} bytes"

    @extend_schema(request={"multipart/form-data": FrameUploadSerializer}, **idempotency_schema("upload", 202))
    def post(self, request):
        return super().post(request)

    def max_file_bytes(self) -> int:
        return settings.CROWDSCOPE_MAX_UPLOAD_BYTES

    def store(self, gateway: Gateway, camera: Camera, fields: dict, key: str | None) -> Frame:
        """The frame and its image, queued for counting once committed."""
        try:
            image = check_image(fields["image"], settings.CROWDSCOPE_MAX_UPLOAD_BYTES, settings.CROWDSCOPE_MAX_PIXELS)
        except UploadRejected as rejected:
            if rejected.status == status.HTTP_413_REQUEST_ENTITY_TOO_LARGE:
                raise PayloadTooLarge(rejected.message) from rejected
            raise exceptions.ValidationError({"image": [rejected.message]}) from rejected
        received_at = timezone.now()
        frame = Frame(
            camera=camera,
            gateway=gateway,
            captured_at=fields.get("captured_at") or received_at,
            received_at=received_at,
            content_hash=image.sha256,
            width=image.width,
            height=image.height,
            idempotency_key=key,
        )
        write_media_file(frame.image, f"frame.{image.extension}", image.data)
        try:
            with transaction.atomic():
                frame.save()
                transaction.on_commit(lambda: enqueue_count(frame))
        except IntegrityError:
            frame.image.delete(save=False)
            raise
        return frame


def read_density(upload, height: int, width: int) -> tuple[np.ndarray, bytes]:
    """The map from the upload, checked: an .npz whose `density` is the frame's 1/8 grid of float16 or float32, finite
    and not negative. Its shape and type are read from the array's header before any of its data is inflated, so a
    small file that would inflate to gigabytes is refused at once."""
    data = upload.read(MAX_DENSITY_BYTES + 1)
    if len(data) > MAX_DENSITY_BYTES:
        raise exceptions.ValidationError({"density": [f"over {MAX_DENSITY_BYTES:,} bytes"]})
    expected = (math.ceil(height / OUTPUT_STRIDE), math.ceil(width / OUTPUT_STRIDE))
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive, archive.open("density.npy") as member:
            version = np.lib.format.read_magic(member)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, fortran_order, dtype = read_header(member)
            if shape != expected:
                raise exceptions.ValidationError(
                    {"density": [f"shape {shape} does not fit a {width}x{height} frame at 1/8: {expected}"]}
                )
            if dtype not in (np.dtype(np.float16), np.dtype(np.float32)):
                raise exceptions.ValidationError({"density": [f"values must be float16 or float32, not {dtype}"]})
            size = math.prod(shape) * dtype.itemsize
            cells = member.read(size)
    except (ValueError, KeyError, OSError, zipfile.BadZipFile) as error:
        raise exceptions.ValidationError({"density": [f"not an .npz with a `density` array: {error}"]}) from error
    if len(cells) != size:
        raise exceptions.ValidationError({"density": ["the array is shorter than its header says"]})
    density = np.frombuffer(cells, dtype).reshape(shape, order="F" if fortran_order else "C").astype(np.float32)
    if not np.isfinite(density).all() or (density < 0).any():
        raise exceptions.ValidationError({"density": ["values must be finite and not negative"]})
    return density, data


class EdgeResultView(GatewayPostView):
    form = EdgeResultSerializer
    stored_status = status.HTTP_201_CREATED
    too_large = "an edge result is at most {limit:,} bytes of density map"

    def max_file_bytes(self) -> int:
        return MAX_DENSITY_BYTES

    @extend_schema(request={"multipart/form-data": EdgeResultSerializer}, **idempotency_schema("result", 201))
    def post(self, request):
        return super().post(request)

    def store(self, gateway: Gateway, camera: Camera, fields: dict, key: str | None) -> Frame:
        """The frame, counted already: its result stored with it in one transaction."""
        density, raw = read_density(fields["density"], fields["height"], fields["width"])
        if abs(float(density.sum()) - fields["count"]) > max(0.5, COUNT_TOLERANCE * fields["count"]):
            raise exceptions.ValidationError(
                {"count": [f"{fields['count']:.2f} is not the map's sum, {density.sum():.2f}"]}
            )
        counted = Counted.of_density(
            camera, density, fields["count"], fields["model"], fields["model_version"], fields["inference_ms"]
        )
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
            store_result(frame, counted)
        frame.refresh_from_db(fields=["status"])
        return frame
