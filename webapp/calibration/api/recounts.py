"""Recounting a period of a camera's frames with its active weights, and following the job."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from webapp.calibration.api.common import PeopleView, absolute_url, bad_field, camera_with_weights, job_accepted
from webapp.calibration.models import (
    RecountJob,
)
from webapp.calibration.queueing import queue_recount
from webapp.period_query import PeriodQuery


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
        return job_accepted(request, job, RecountSerializer)


class RecountDetailView(PeopleView):
    @extend_schema(responses={200: RecountSerializer})
    def get(self, request, pk: int, job: int):
        found = get_object_or_404(RecountJob, camera=camera_with_weights(request, pk), pk=job)
        return Response(RecountSerializer(found, context={"request": request}).data)
