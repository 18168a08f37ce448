"""Results and zone counts carry their frame's capture time (the partition key of migration 0007); quarter-hour
counts and each camera's latest count are kept as frames are counted, so both are filled here from the frames kept."""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import OuterRef, Subquery

# Every kept frame's count, and each of its zones', added to its quarter hour of UTC. Quarter hours that retention
# folded before hold no kept frame (it folded whole quarter hours), so nothing is counted twice.
QUARTER_HOURS_SQL = {
    "postgresql": """
        INSERT INTO ingest_quarterhourcount (camera_id, zone_name, start, frames, total, peak)
        SELECT camera_id, zone_name, quarter, COUNT(*), SUM(count), MAX(count) FROM (
            SELECT f.camera_id, '' AS zone_name, r.count,
                   to_timestamp(floor(extract(epoch FROM f.captured_at) / 900) * 900) AS quarter
            FROM ingest_result r JOIN ingest_frame f ON f.id = r.frame_id
            UNION ALL
            SELECT f.camera_id, z.zone_name, z.count,
                   to_timestamp(floor(extract(epoch FROM f.captured_at) / 900) * 900)
            FROM ingest_zonecount z JOIN ingest_result r ON r.id = z.result_id JOIN ingest_frame f ON f.id = r.frame_id
        ) counts GROUP BY camera_id, zone_name, quarter
        ON CONFLICT (camera_id, zone_name, start) DO UPDATE SET frames = ingest_quarterhourcount.frames + excluded.frames,
            total = ingest_quarterhourcount.total + excluded.total,
            peak = GREATEST(ingest_quarterhourcount.peak, excluded.peak)
    """,
    "sqlite": """
        INSERT INTO ingest_quarterhourcount (camera_id, zone_name, start, frames, total, peak)
        SELECT camera_id, zone_name, quarter, COUNT(*), SUM(count), MAX(count) FROM (
            SELECT f.camera_id, '' AS zone_name, r.count,
                   datetime(CAST(strftime('%s', f.captured_at) AS INTEGER) / 900 * 900, 'unixepoch') AS quarter
            FROM ingest_result r JOIN ingest_frame f ON f.id = r.frame_id
            UNION ALL
            SELECT f.camera_id, z.zone_name, z.count,
                   datetime(CAST(strftime('%s', f.captured_at) AS INTEGER) / 900 * 900, 'unixepoch')
            FROM ingest_zonecount z JOIN ingest_result r ON r.id = z.result_id JOIN ingest_frame f ON f.id = r.frame_id
        ) WHERE true GROUP BY camera_id, zone_name, quarter
        ON CONFLICT (camera_id, zone_name, start) DO UPDATE SET frames = ingest_quarterhourcount.frames + excluded.frames,
            total = ingest_quarterhourcount.total + excluded.total,
            peak = MAX(ingest_quarterhourcount.peak, excluded.peak)
    """,
}


def copy_capture_times(apps, schema_editor):
    Frame, Result, ZoneCount = (apps.get_model("ingest", name) for name in ("Frame", "Result", "ZoneCount"))
    Result.objects.update(captured_at=Subquery(Frame.objects.filter(pk=OuterRef("frame_id")).values("captured_at")))
    ZoneCount.objects.update(
        captured_at=Subquery(Result.objects.filter(pk=OuterRef("result_id")).values("captured_at"))
    )


def fill_rollups(apps, schema_editor):
    schema_editor.execute(QUARTER_HOURS_SQL[schema_editor.connection.vendor])
    Camera, Result, LatestCount = (
        apps.get_model(app, name)
        for app, name in (("cameras", "Camera"), ("ingest", "Result"), ("ingest", "LatestCount"))
    )
    for camera_id in Camera.objects.values_list("pk", flat=True):
        newest = Result.objects.filter(frame__camera_id=camera_id).order_by("-captured_at").first()
        if newest is not None:
            LatestCount.objects.create(
                camera_id=camera_id,
                frame_id=newest.frame_id,
                result_id=newest.pk,
                captured_at=newest.captured_at,
                count=newest.count,
            )


class Migration(migrations.Migration):
    dependencies = [
        ("cameras", "0007_alter_camera_counting_model"),
        ("ingest", "0005_alter_result_heatmap"),
    ]

    operations = [
        migrations.AddField(
            model_name="result",
            name="captured_at",
            field=models.DateTimeField(
                null=True, help_text="the frame's, copied on save: results are partitioned by it"
            ),
        ),
        migrations.AddField(
            model_name="zonecount",
            name="captured_at",
            field=models.DateTimeField(
                null=True, help_text="the frame's, copied on save: zone counts are partitioned by it"
            ),
        ),
        migrations.RunPython(copy_capture_times, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="result",
            name="captured_at",
            field=models.DateTimeField(help_text="the frame's, copied on save: results are partitioned by it"),
        ),
        migrations.AlterField(
            model_name="zonecount",
            name="captured_at",
            field=models.DateTimeField(help_text="the frame's, copied on save: zone counts are partitioned by it"),
        ),
        migrations.AlterField(
            model_name="result",
            name="frame",
            field=models.OneToOneField(
                db_constraint=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="result",
                to="ingest.frame",
            ),
        ),
        migrations.AlterField(
            model_name="zonecount",
            name="result",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="zone_counts",
                to="ingest.result",
            ),
        ),
        migrations.RemoveConstraint(model_name="frame", name="frame_idempotency_key_unique_per_gateway"),
        migrations.AddConstraint(
            model_name="frame",
            constraint=models.UniqueConstraint(
                condition=models.Q(("idempotency_key__isnull", False)),
                fields=("gateway", "idempotency_key", "captured_at"),
                name="frame_idempotency_key_unique_per_gateway",
            ),
        ),
        migrations.RemoveConstraint(model_name="zonecount", name="zone_count_unique_per_result"),
        migrations.AddConstraint(
            model_name="zonecount",
            constraint=models.UniqueConstraint(
                fields=("result", "zone", "captured_at"), name="zone_count_unique_per_result"
            ),
        ),
        migrations.CreateModel(
            name="LatestCount",
            fields=[
                (
                    "camera",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="latest_count",
                        serialize=False,
                        to="cameras.camera",
                    ),
                ),
                ("frame_id", models.BigIntegerField()),
                ("result_id", models.BigIntegerField()),
                ("captured_at", models.DateTimeField()),
                ("count", models.FloatField()),
            ],
        ),
        migrations.RunPython(fill_rollups, migrations.RunPython.noop),
    ]
