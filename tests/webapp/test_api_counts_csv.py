"""The count series as CSV: `?format=csv` on the counts endpoint gives the JSON's rows, one column per zone."""

import csv
import io

import pytest

from tests.webapp.test_api_camera_counts import T0, at, get_counts, iso, series, zones  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


def rows(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_raw_csv_has_a_row_per_frame_and_a_column_per_zone(api, camera, series):  # noqa: F811
    params = {"from": iso(T0), "to": iso(at(60)), "format": "csv"}
    response = get_counts(api, camera, **params)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith(f'attachment; filename="camera-{camera.pk}-counts-raw-')
    table = rows(response)
    as_json = get_counts(api, camera, **{"from": iso(T0), "to": iso(at(60))}).json()["points"]
    assert [row["time"] for row in table] == [point["time"] for point in as_json]
    assert [float(row["count"]) for row in table] == [10.0, 20.0, 12.0, 40.0, 30.0]
    assert [float(row["zone east"]) for row in table] == [4.0, 8.0, 5.0, 30.0, 10.0]
    assert list(table[0]) == ["time", "frame", "count", "zone east", "zone west"]


def test_bucketed_csv_has_mean_and_peak_per_zone(api, camera, series):  # noqa: F811
    response = get_counts(api, camera, **{"from": iso(T0), "to": iso(at(60)), "bucket": "15m", "format": "csv"})
    table = rows(response)
    assert [(row["start"], row["frames"], row["mean"], row["peak"]) for row in table] == [
        (iso(at(0)), "3", "14.000", "20.000"),
        (iso(at(15)), "2", "35.000", "40.000"),
    ]
    assert (table[1]["zone east mean"], table[1]["zone east peak"]) == ("20.000", "30.000")


def test_the_accept_header_also_asks_for_csv(api, camera, series):  # noqa: F811
    response = api.get(
        f"/api/v1/cameras/{camera.pk}/counts/", {"from": iso(T0), "to": iso(at(60))}, HTTP_ACCEPT="text/csv"
    )
    assert response["Content-Type"].startswith("text/csv") and len(rows(response)) == 5


def test_a_bad_query_says_why_in_csv(api, camera):
    response = get_counts(api, camera, **{"bucket": "2h", "format": "csv"})
    assert response.status_code == 400
    assert "bucket" in response.content.decode()
