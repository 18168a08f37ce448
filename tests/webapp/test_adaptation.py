"""Label-free adaptation end to end with the real library on small frames the tests draw: the API (or the beat, or the
command) starts the job, the Celery task (eager) adapts the default weights to the camera's stored frames, the camera
switches to an adapted version and its stored frames are recounted with it; a job the library finds unnecessary is
kept, one that cannot run fails, and either way the camera keeps its weights; rolling back; calibrating on top of an
adapted version; what the camera page says the count rests on."""

import io
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from PIL import Image

from counting.engine import CountingEngine, resolve_precision
from counting.images import load_rgb
from counting.models import default_weights, read_checkpoint
from tests.factories import calibrated_weights, gateway_with_token, queued_frame, token_client
from tests.stored_media import replace_stored, stored_bytes, stored_copy
from tests.webapp.test_calibration_jobs import FRAMES, folder, mark_folder  # noqa: F401  (`folder` is a fixture)
from webapp import queues
from webapp.accounts.roles import Role
from webapp.calibration.adaptation import adapt_new_cameras
from webapp.calibration.models import AdaptationJob, CalibrationJob, RecountJob, WeightsVersion
from webapp.cameras.models import Camera
from webapp.ingest.models import Frame, Result
from workers.tasks import adapt_camera, calibrate_camera

pytestmark = pytest.mark.django_db

SIZE = (64, 48)
MIN_FRAMES, MAX_FRAMES = 4, 8
# Every stored frame adapts, whatever it measures: the rule's gates are the library's tests' business.
RULE = {
    "min_frames": MIN_FRAMES,
    "max_frames": MAX_FRAMES,
    "strength": 0.5,
    "novelty_threshold": 0.0,
    "min_count_change": 0.0,
}


@pytest.fixture(autouse=True)
def small_rule(settings):
    """A rule for a handful of small frames that adapts any camera farther than 0 from the weights (the drawn frames
    are, whatever the library's default threshold)."""
    settings.CROWDSCOPE_ADAPTATION_RULE = RULE
    settings.CELERY_TASK_ALWAYS_EAGER = True  # what the views and the beat queue runs in this process


def drawn_jpeg(seed: int, size: tuple[int, int] = SIZE) -> bytes:
    """A noise image with a few bright blobs, different for every seed."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 120, (size[1], size[0], 3)).astype(np.uint8)
    for _ in range(5):
        x, y = rng.integers(4, size[0] - 4), rng.integers(4, size[1] - 4)
        pixels[y - 3 : y + 3, x - 3 : x + 3] = 230
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def counted_frames(camera, frames: int, hours: int, start: datetime | None = None, first_seed: int = 0) -> list[Frame]:
    """`frames` frames of the camera as the workers leave them (done, a result, the image kept), captured a minute
    apart within each of `hours` consecutive hours of two days ago."""
    start = start or (timezone.now() - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    made = []
    for index in range(frames):
        captured = start + timedelta(hours=index % hours, minutes=index // hours)
        frame = queued_frame(camera, drawn_jpeg(first_seed + index), status=Frame.Status.DONE, captured_at=captured)
        Result.objects.create(frame=frame, count=3.0, model_name="csrnet-lite", model_version="t@0", inference_ms=1)
        made.append(frame)
    return made


def adapted_version(camera, number: int, **fields) -> WeightsVersion:
    made = WeightsVersion(
        camera=camera,
        number=number,
        kind=WeightsVersion.Kind.ADAPTED,
        arch="csrnet-lite",
        folds=None,
        adapted_frames=100,
        frames_from=datetime(2026, 12, 3, 8, tzinfo=UTC),
        frames_to=datetime(2026, 12, 5, 20, tzinfo=UTC),
        mean_count_before=14.2,
        mean_count_after=27.9,
        rule={"min_frames": 20, "max_frames": 100, "strength": 0.5, "novelty_threshold": 0.0},
        novelty=2.5,
        strength=0.5,
        **fields,
    )
    made.weights.save(f"v{number}.pt", ContentFile(b"not a checkpoint"), save=False)
    made.save()
    return made


def use(camera, version: WeightsVersion | None) -> None:
    camera.active_weights = version
    camera.save()


def post(client, path: str):
    return client.post(path, "{}", content_type="application/json")


# ---- the job -------------------------------------------------------------------------------------------------------


def test_an_adaptation_switches_the_camera_records_its_figures_and_recounts_its_frames(
    operator, camera, gateway, settings, django_capture_on_commit_callbacks
):
    frames = counted_frames(camera, 12, hours=6)

    with django_capture_on_commit_callbacks(execute=True):
        started = post(operator, f"/api/v1/cameras/{camera.pk}/adaptations/")
    assert started.status_code == 202, started.content
    job = operator.get(started.json()["status_url"]).json()

    assert job["status"] == "switched" and job["switched"] and job["version"] == 1, job["message"]
    assert job["progress"] == 1.0 and job["frames"] == MAX_FRAMES and job["automatic"] is False
    assert "the camera now counts with v1" in job["message"] and "recounting its stored frames" in job["message"]
    version = WeightsVersion.objects.get(camera=camera)
    camera.refresh_from_db()
    assert camera.active_weights == version and version.kind == "adapted" and version.base is None
    assert version.adapted_frames == MAX_FRAMES and version.created_by is not None
    assert version.held_out_mae_before is None and version.held_out_frames is None and version.folds is None
    assert RULE.items() <= version.rule.items()  # the rule as the library applied it, every field of it
    assert version.novelty > 0 and version.strength == 0.5
    assert (version.mean_count_before, version.mean_count_after) == (job["mean_count_before"], job["mean_count_after"])
    # Spread over the hours: the frames used span all six hours of the camera's frames, not the newest ones only.
    captured = sorted(frame.captured_at for frame in frames)
    assert version.frames_from == captured[0] and version.frames_to - version.frames_from >= timedelta(hours=5)
    assert version.weights.name == f"calibration/{camera.pk}/weights/v1.pt"
    assert version.onnx.name == f"calibration/{camera.pk}/weights/v1.onnx" and version.onnx.size > 0
    # Adapted from the default weights, whose statistics the checkpoint's meta records beside the rule.
    meta = read_checkpoint(stored_copy(version.weights))["meta"]["adaptation"]
    assert meta["base_weights"] == str(default_weights(camera.counting_model)) and meta["strength"] == 0.5
    day = f"{version.frames_from.day} {version.frames_from:%b}"
    assert version.summary == (
        f"adapted from {MAX_FRAMES} frames of {day}; mean count {version.mean_count_before:.1f} → "
        f"{version.mean_count_after:.1f}"
    )

    # Every stored frame was recounted with the adapted weights, and counts as they do.
    recount = RecountJob.objects.get(camera=camera)
    assert operator.get(job["recount_url"]).json()["status"] == "done"
    assert recount.status == "done" and recount.frames == len(frames), recount.message
    adapted = CountingEngine(
        "csrnet-lite",
        stored_copy(version.weights),
        precision=settings.COUNTING_PRECISION,
        device=settings.COUNTING_DEVICE,
    )
    for frame in Frame.objects.filter(camera=camera).select_related("result"):
        assert frame.result.model_version.startswith(f"cam{camera.pk}-v1 v1.pt@")
        expected = adapted.count(load_rgb(stored_bytes(frame.image.name))).count
        assert frame.result.count == pytest.approx(expected, rel=1e-4, abs=1e-4)

    # The versions list shows it with its summary; the gateway gets its ONNX as it gets a calibrated one.
    listed = operator.get(f"/api/v1/cameras/{camera.pk}/weights/").json()
    assert [(v["kind"], v["summary"]) for v in listed["versions"]] == [("adapted", version.summary)]
    onnx = token_client(gateway.token).get(f"/api/v1/cameras/{camera.pk}/weights.onnx")
    assert onnx.status_code == 200 and onnx["X-Weights-Version"] == f"cam{camera.pk}-v1"


def test_the_camera_keeps_its_weights_when_the_library_finds_they_fit(camera, settings):
    # A threshold no camera's novelty reaches: the library says the weights already know such frames.
    settings.CROWDSCOPE_ADAPTATION_RULE = RULE | {"novelty_threshold": 1e9}
    counted_frames(camera, 6, hours=3)
    job = AdaptationJob.objects.create(camera=camera)

    assert adapt_camera.apply(args=[job.pk]).get() == "kept"

    job.refresh_from_db()
    assert job.status == "kept" and job.progress == 1.0 and job.frames == 6
    assert "the weights already know frames like these, so the camera keeps them" in job.message
    assert job.mean_count_after == job.mean_count_before and job.result_version is None
    camera.refresh_from_db()
    assert camera.active_weights is None and not WeightsVersion.objects.exists() and not RecountJob.objects.exists()


def test_a_job_that_cannot_run_fails_and_the_camera_keeps_its_weights(camera):
    kept = calibrated_weights(camera, 1)
    use(camera, kept)

    def run() -> AdaptationJob:
        job = AdaptationJob.objects.create(camera=camera)
        adapt_camera.apply(args=[job.pk]).get()
        job.refresh_from_db()
        return job

    no_frames = run()
    assert no_frames.status == "failed"
    assert f"camera {camera.pk} has no stored frames to adapt on" in no_frames.message
    assert no_frames.message.endswith("the camera keeps its weights")

    frames = counted_frames(camera, MIN_FRAMES - 1, hours=3)
    too_few = run()
    assert too_few.status == "failed" and "needs at least 4" in too_few.message

    # Enough frames, but one is unreadable and one was downscaled by retention: both are skipped, too few are left.
    broken, downscaled = counted_frames(camera, 2, hours=2, first_seed=100)
    replace_stored(broken.image.name, b"not an image")
    replace_stored(downscaled.image.name, drawn_jpeg(7, (32, 24)))
    skipped = run()
    assert skipped.status == "failed"
    assert f"3 of camera {camera.pk}'s stored frames can be used (2 skipped" in skipped.message

    camera.refresh_from_db()
    assert camera.active_weights == kept and WeightsVersion.objects.count() == 1
    assert not RecountJob.objects.exists()
    assert {frame.pk: frame.result.count for frame in Frame.objects.select_related("result")} == {
        frame.pk: 3.0 for frame in [*frames, broken, downscaled]
    }


# ---- operator actions ----------------------------------------------------------------------------------------------


def test_roll_back_steps_to_the_previous_version_then_the_default(operator, sign_in, camera, other_camera):
    v1 = calibrated_weights(camera, 1)
    v2 = adapted_version(camera, 2)
    use(camera, v2)
    url = f"/api/v1/cameras/{camera.pk}/weights/rollback/"
    assert operator.get(f"/api/v1/cameras/{camera.pk}/weights/").json()["rollback"] == {
        "version": v1.pk,
        "label": v1.label,
    }

    first = post(operator, url).json()
    assert first["active"] == v1.pk and first["rollback"] == {"version": None, "label": "the default weights"}
    second = post(operator, url).json()
    assert second["active"] is None and second["default"]["active"] and second["rollback"] is None
    refused = post(operator, url)
    assert refused.status_code == 400 and "nothing to roll back" in refused.json()["detail"]
    camera.refresh_from_db()
    assert camera.active_weights is None and WeightsVersion.objects.count() == 2
    # As switching versions does, a rollback recounts nothing by itself.
    assert not RecountJob.objects.exists()
    use(camera, v2)
    assert post(sign_in(Role.VIEWER), url).status_code == 403  # the same client, signed in again as a viewer
    camera.refresh_from_db()
    assert camera.active_weights == v2


def test_adapting_again_starts_from_the_default_weights_once_at_a_time(
    operator, camera, django_capture_on_commit_callbacks
):
    calibrated = calibrated_weights(camera, 1)  # not a checkpoint: adapting from it would fail
    use(camera, calibrated)
    counted_frames(camera, 6, hours=3)
    url = f"/api/v1/cameras/{camera.pk}/adaptations/"

    with django_capture_on_commit_callbacks() as callbacks:
        first = post(operator, url)
    second = post(operator, url)
    assert first.status_code == 202 and len(callbacks) == 1 and first.json()["status"] == "queued"
    assert second.status_code == 409 and second.json()["id"] == first.json()["id"]

    with django_capture_on_commit_callbacks(execute=True):
        callbacks[0]()
    assert operator.get(first.json()["status_url"]).json()["version"] == 2
    with django_capture_on_commit_callbacks(execute=True):
        again = post(operator, url)
    assert operator.get(again.json()["status_url"]).json()["version"] == 3

    v2, v3 = WeightsVersion.objects.filter(number__in=[2, 3]).order_by("number")
    camera.refresh_from_db()
    assert camera.active_weights == v3 and v3.kind == v2.kind == "adapted" and v3.base is None
    default = str(default_weights(camera.counting_model))
    assert read_checkpoint(stored_copy(v3.weights))["meta"]["adaptation"]["base_weights"] == default
    listed = operator.get(url).json()
    assert [job["version"] for job in listed] == [3, 2]


# ---- the automatic start -------------------------------------------------------------------------------------------


def test_new_cameras_with_enough_frames_over_enough_hours_adapt_once(
    settings, site, camera, django_capture_on_commit_callbacks
):
    settings.CROWDSCOPE_ADAPTATION_MIN_FRAMES, settings.CROWDSCOPE_ADAPTATION_MIN_HOURS = 6, 3
    counted_frames(camera, 6, hours=3)  # eligible
    few = Camera.objects.create(site=site, name="few frames")
    counted_frames(few, 5, hours=5)
    daytime = Camera.objects.create(site=site, name="one hour only")
    counted_frames(daytime, 8, hours=2)
    calibrated = Camera.objects.create(site=site, name="calibrated")
    counted_frames(calibrated, 6, hours=3)
    calibrated_weights(calibrated, 1)
    tried = Camera.objects.create(site=site, name="tried before")
    counted_frames(tried, 6, hours=3)
    AdaptationJob.objects.create(camera=tried, status="failed", message="too few frames")
    on_gateway = Camera.objects.create(site=site, name="edge")
    for frame in counted_frames(on_gateway, 6, hours=3):
        Frame.objects.filter(pk=frame.pk).update(counted_on_gateway=True)

    settings.CROWDSCOPE_ADAPTATION_AUTO = False
    assert adapt_new_cameras() == []
    settings.CROWDSCOPE_ADAPTATION_AUTO = True
    with django_capture_on_commit_callbacks() as callbacks:
        queued = adapt_new_cameras()

    assert [job.camera for job in queued] == [camera] and len(callbacks) == 1
    assert queued[0].automatic and queued[0].created_by is None and "6 frames over 3 hours" in queued[0].message
    assert adapt_new_cameras() == []  # queued already
    AdaptationJob.objects.filter(camera=camera).update(status="failed")
    assert adapt_new_cameras() == []  # and never again by itself
    assert AdaptationJob.objects.filter(camera=camera).count() == 1


def test_the_beat_starts_the_adaptation_and_the_worker_runs_it(settings, camera, django_capture_on_commit_callbacks):
    from workers.tasks import adapt_new_cameras as beat_task

    settings.CROWDSCOPE_ADAPTATION_MIN_FRAMES, settings.CROWDSCOPE_ADAPTATION_MIN_HOURS = 6, 3
    counted_frames(camera, 6, hours=3)
    schedule = settings.CELERY_BEAT_SCHEDULE["adapt-new-cameras"]
    assert schedule == {"task": queues.ADAPT_NEW_CAMERAS, "schedule": 300.0}

    with django_capture_on_commit_callbacks(execute=True):
        assert beat_task.apply().get() == 1

    job = AdaptationJob.objects.get(camera=camera)
    assert job.status == "switched" and job.automatic and job.result_version.created_by is None, job.message
    camera.refresh_from_db()
    assert camera.active_weights == job.result_version
    assert RecountJob.objects.get(camera=camera).status == "done"


# ---- calibration on top --------------------------------------------------------------------------------------------


def test_a_calibration_tunes_the_adapted_version_and_its_guard_measures_against_it(
    camera,
    folder,  # noqa: F811  (the fixture imported above)
    settings,
    django_capture_on_commit_callbacks,
):
    settings.CROWDSCOPE_CALIBRATION_EPOCHS = 2
    settings.CROWDSCOPE_CALIBRATION_OPTIONS = {"crop": (128, 128), "folds": 2, "lr": 3e-4, "warmup_epochs": 0}
    for index, image in enumerate(sorted(folder.glob("*.jpg"))):  # the camera's stored frames: the marked ones
        captured = timezone.now() - timedelta(hours=index)
        frame = queued_frame(camera, image.read_bytes(), status=Frame.Status.DONE, captured_at=captured)
        Result.objects.create(frame=frame, count=0, model_name="csrnet-lite", model_version="t@0", inference_ms=1)
    adaptation = AdaptationJob.objects.create(camera=camera)
    with django_capture_on_commit_callbacks(execute=True):
        adapt_camera.apply(args=[adaptation.pk]).get()
    adapted = WeightsVersion.objects.get(camera=camera, kind="adapted")
    marked = mark_folder(camera, folder)

    calibration = CalibrationJob.objects.create(camera=camera)
    calibrate_camera.apply(args=[calibration.pk]).get()

    calibration.refresh_from_db()
    assert calibration.status == "switched", calibration.message
    tuned = calibration.result_version
    camera.refresh_from_db()
    assert camera.active_weights == tuned and tuned.kind == "calibrated" and tuned.base == adapted
    # The guard's "before" is the adapted weights' error on the marked frames, counted whole as workers count.
    precision = resolve_precision(settings.COUNTING_PRECISION, settings.COUNTING_DEVICE)
    before = CountingEngine("csrnet-lite", stored_copy(adapted.weights), precision=precision)
    errors = [abs(before.count(load_rgb(stored_bytes(frame.image.name))).count - frame.count) for frame in marked]
    assert calibration.held_out_mae_before == pytest.approx(np.mean(errors), rel=1e-3)
    default = CountingEngine("csrnet-lite", precision=precision)
    default_mae = np.mean(
        [abs(default.count(load_rgb(stored_bytes(frame.image.name))).count - frame.count) for frame in marked]
    )
    assert abs(default_mae - calibration.held_out_mae_before) > 0.01
    assert tuned.basis.startswith("Adapted, then calibrated: about ±")
    assert len(marked) == FRAMES


# ---- the command ---------------------------------------------------------------------------------------------------


def test_the_command_adapts_on_stored_frames_and_prints_the_outcome(camera, capsys, django_capture_on_commit_callbacks):
    counted_frames(camera, 6, hours=3)

    with django_capture_on_commit_callbacks() as callbacks:
        call_command("adapt_camera", str(camera.pk), "--json")

    report = json.loads(capsys.readouterr().out)
    version = WeightsVersion.objects.get(camera=camera)
    assert report == {
        "camera": camera.pk,
        "frames": 6,
        "version": 1,
        "mean_count_before": version.mean_count_before,
        "mean_count_after": version.mean_count_after,
        "switched": True,
    }
    camera.refresh_from_db()
    assert camera.active_weights == version
    assert len(callbacks) == 1 and RecountJob.objects.get(camera=camera).status == "queued"


def test_the_command_adapts_on_a_folder(camera, tmp_path, capsys):
    for index in range(5):
        (tmp_path / f"view-{index}.jpg").write_bytes(drawn_jpeg(index))
    (tmp_path / "notes.txt").write_text("not an image: ignored")

    call_command("adapt_camera", str(camera.pk), "--frames", str(tmp_path))

    assert "switched" in capsys.readouterr().out
    version = WeightsVersion.objects.get(camera=camera)
    assert version.adapted_frames == 5 and version.frames_from is None
    assert version.summary.startswith("adapted from 5 frames from a folder; mean count")
    assert not RecountJob.objects.exists()  # the camera has no counted frame to recount


@pytest.mark.parametrize(
    ("images", "error"),
    [
        ({"a.jpg": drawn_jpeg(1), "b.jpg": drawn_jpeg(2)}, "too few frames: 2"),
        ({**{f"{i}.jpg": drawn_jpeg(i) for i in range(4)}, "broken.jpg": b"not an image"}, "broken.jpg"),
        ({**{f"{i}.jpg": drawn_jpeg(i) for i in range(4)}, "big.jpg": drawn_jpeg(9, (128, 96))}, "mixed sizes"),
    ],
)
def test_the_command_refuses_a_bad_folder_and_the_camera_keeps_its_weights(camera, tmp_path, capsys, images, error):
    kept = calibrated_weights(camera, 1)
    use(camera, kept)
    for name, data in images.items():
        (tmp_path / name).write_bytes(data)

    with pytest.raises(CommandError, match=error):
        call_command("adapt_camera", str(camera.pk), "--frames", str(tmp_path), "--json")

    assert json.loads(capsys.readouterr().out)["switched"] is False
    camera.refresh_from_db()
    assert camera.active_weights == kept and WeightsVersion.objects.count() == 1
    assert AdaptationJob.objects.get().status == "failed"


def test_the_command_refuses_an_unknown_camera_a_missing_folder_and_a_camera_without_frames(camera, tmp_path):
    with pytest.raises(CommandError, match="there is no camera 9999"):
        call_command("adapt_camera", "9999")
    with pytest.raises(CommandError, match="is not a folder"):
        call_command("adapt_camera", str(camera.pk), "--frames", str(tmp_path / "missing"))
    assert not AdaptationJob.objects.exists()
    with pytest.raises(CommandError, match=f"camera {camera.pk} has no stored frames to adapt on"):
        call_command("adapt_camera", str(camera.pk))
    camera.refresh_from_db()
    assert camera.active_weights is None and not WeightsVersion.objects.exists()


# ---- pages ---------------------------------------------------------------------------------------------------------


def test_the_camera_page_says_what_the_count_rests_on(sign_in, camera):
    viewer = sign_in(Role.VIEWER)

    def line() -> str:
        page = viewer.get(f"/cameras/{camera.pk}/").content.decode()
        start = page.index('id="calibration-note">') + len('id="calibration-note">')
        return page[start : page.index("\n", start)].strip()

    assert line() == "Default weights: not adapted or calibrated yet."
    adapted = adapted_version(camera, 1)
    use(camera, adapted)
    assert line() == "Adapted from 100 frames of 3 Dec-5 Dec (mean count 14.2 → 27.9), weights v1."
    calibrated = calibrated_weights(camera, 2, base=adapted, created_at=datetime(2026, 12, 6, 12, tzinfo=UTC))
    use(camera, calibrated)
    assert line() == (
        "Adapted, then calibrated: about ±3 people on frames like these, measured on 12 marked frames "
        "(weights v2, 6 Dec 2026)."
    )
    use(camera, calibrated_weights(camera, 3, created_at=datetime(2026, 12, 7, 12, tzinfo=UTC)))
    assert line().startswith("Calibrated: about ±3 people on frames like these, measured on 12 marked frames")


def test_the_calibrate_page_offers_adapting_and_rolling_back(operator, camera):
    page = operator.get(f"/cameras/{camera.pk}/calibrate/").content.decode()

    assert 'id="adapt"' in page and 'id="rollback"' in page
    urls = json.loads(page.split('id="calibration-urls" type="application/json">')[1].split("</script>")[0])
    assert urls["adaptations"] == f"/api/v1/cameras/{camera.pk}/adaptations/"
    assert urls["rollback"] == f"/api/v1/cameras/{camera.pk}/weights/rollback/"


def test_viewers_follow_adaptations_but_only_operators_start_one(sign_in, camera):
    url = f"/api/v1/cameras/{camera.pk}/adaptations/"
    viewer = sign_in(Role.VIEWER)
    assert viewer.get(url).json() == []
    assert post(viewer, url).status_code == 403
    assert token_client(gateway_with_token("edge", camera).token).post(url).status_code == 403
    assert not AdaptationJob.objects.exists()
