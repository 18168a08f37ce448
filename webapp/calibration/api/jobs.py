"""Calibration and adaptation jobs: starting one for a camera and following it."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers
from rest_framework.response import Response

from webapp.calibration.adaptation import queue_adaptation
from webapp.calibration.api.common import (
    PeopleView,
    absolute_url,
    camera_with_weights,
    job_accepted,
    job_already_active,
)
from webapp.calibration.models import (
    MIN_MARKED_FRAMES,
    AdaptationJob,
    CalibrationJob,
    MarkedFrame,
)
from webapp.calibration.queueing import enqueue_calibration


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
            return job_already_active(CalibrationJob, camera, "a calibration")
        return job_accepted(request, job, CalibrationJobSerializer)


class CalibrationDetailView(PeopleView):
    @extend_schema(responses={200: CalibrationJobSerializer})
    def get(self, request, pk: int, job: int):
        found = get_object_or_404(
            CalibrationJob.objects.select_related("result_version"), camera=camera_with_weights(request, pk), pk=job
        )
        return Response(CalibrationJobSerializer(found, context={"request": request}).data)


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
            return job_already_active(AdaptationJob, camera, "an adaptation")
        return job_accepted(request, job, AdaptationJobSerializer)


class AdaptationDetailView(PeopleView):
    @extend_schema(responses={200: AdaptationJobSerializer})
    def get(self, request, pk: int, job: int):
        found = get_object_or_404(
            AdaptationJob.objects.select_related("result_version"), camera=camera_with_weights(request, pk), pk=job
        )
        return Response(AdaptationJobSerializer(found, context={"request": request}).data)
