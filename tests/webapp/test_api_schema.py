"""GET /api/schema/: an OpenAPI document of the API, for gateway developers; it and its Swagger UI (/api/docs/) only
for those who may read the API (people with a role, API keys)."""

import json

import pytest
import yaml
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from webapp.accounts.models import ApiKey

pytestmark = pytest.mark.django_db

ENDPOINTS = {
    "/api/v1/frames/": {"post"},
    "/api/v1/edge-results/": {"post"},
    "/api/v1/frames/{id}/": {"get"},
    "/api/v1/frames/{id}/image": {"get"},
    "/api/v1/frames/{id}/heatmap.png": {"get"},
    "/api/v1/frames/{id}/density.npz": {"get"},
    "/api/v1/frames/{id}/density.json": {"get"},
    "/api/v1/cameras/{id}/counts/": {"get"},
    "/api/v1/alerts/": {"get"},
    "/api/v1/sites/": {"get"},
    "/api/v1/cameras/": {"get"},
    # Calibration (webapp.calibration.api_urls).
    "/api/v1/cameras/{id}/marked-frames/": {"get", "post"},
    "/api/v1/cameras/{id}/marked-frames/{mid}/": {"get", "put", "patch", "delete"},
    "/api/v1/cameras/{id}/marked-frames/{mid}/image": {"get"},
    "/api/v1/cameras/{id}/calibration-frames/": {"get"},
    "/api/v1/cameras/{id}/calibrations/": {"get", "post"},
    "/api/v1/cameras/{id}/calibrations/{job}/": {"get"},
    "/api/v1/cameras/{id}/weights/": {"get"},
    "/api/v1/cameras/{id}/weights/activate/": {"post"},
    "/api/v1/cameras/{id}/weights/rollback/": {"post"},
    "/api/v1/cameras/{id}/adaptations/": {"get", "post"},
    "/api/v1/cameras/{id}/adaptations/{job}/": {"get"},
    "/api/v1/cameras/{id}/weights.onnx": {"get"},
    "/api/v1/cameras/{id}/recounts/": {"post"},
    "/api/v1/cameras/{id}/recounts/{job}/": {"get"},
    "/api/v1/frames/{id}/proposals/": {"get"},
}


@pytest.fixture
def schema(viewer) -> dict:
    response = viewer.get("/api/schema/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    return yaml.safe_load(response.content)


def test_the_schema_is_valid_openapi(schema):
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "CrowdScope API"
    validate_schema(schema)


def test_the_schema_lists_every_endpoint(schema):
    methods = {"get", "post", "put", "patch", "delete"}
    paths = {path: set(operations) & methods for path, operations in schema["paths"].items()}
    assert paths == ENDPOINTS


def test_the_upload_is_documented(schema):
    upload = schema["paths"]["/api/v1/frames/"]["post"]
    form = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    if "$ref" in form:
        form = schema["components"]["schemas"][form["$ref"].rsplit("/", 1)[-1]]
    assert set(form["properties"]) == {"camera", "image", "captured_at"}
    assert set(form["required"]) == {"camera", "image"}
    assert "Idempotency-Key" in {parameter["name"] for parameter in upload["parameters"]}
    assert "202" in upload["responses"]
    assert {"gatewayToken": []} in upload["security"]


def test_the_gateway_token_scheme_is_described(schema):
    scheme = schema["components"]["securitySchemes"]["gatewayToken"]
    assert scheme == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "Token <gateway token>",
    }


def test_the_counts_parameters_are_documented(schema):
    parameters = {p["name"]: p for p in schema["paths"]["/api/v1/cameras/{id}/counts/"]["get"]["parameters"]}
    assert {"from", "to", "bucket"} <= set(parameters)
    assert set(parameters["bucket"]["schema"]["enum"]) == {"raw", "1m", "15m", "1h", "1d"}


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/"])
def test_the_schema_and_its_ui_are_refused_to_anonymous_callers(client, settings, path):
    assert not settings.DEBUG  # production
    assert client.get(path).status_code in (401, 403)


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/"])
def test_the_schema_and_its_ui_are_refused_to_people_without_a_role(sign_in, path):
    assert sign_in(None).get(path).status_code == 403


def test_the_swagger_ui_answers_viewers_and_api_keys(viewer):
    assert viewer.get("/api/docs/").status_code == 200
    key = ApiKey(name="bi-tool")
    secret = key.issue_secret()
    key.save()
    assert APIClient(HTTP_AUTHORIZATION=f"Bearer {secret}").get("/api/schema/").status_code == 200


def test_the_schema_is_also_served_as_json(viewer):
    response = viewer.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    assert set(json.loads(response.content)["paths"]) == set(ENDPOINTS)


def component(schema, reference: dict) -> dict:
    return schema["components"]["schemas"][reference["$ref"].rsplit("/", 1)[-1]]


def test_frames_and_count_series_have_typed_answers(schema):
    counts = schema["paths"]["/api/v1/cameras/{id}/counts/"]["get"]["responses"]["200"]["content"]
    assert set(counts) == {"application/json", "text/csv"}
    series = component(schema, counts["application/json"]["schema"])
    assert {"camera", "time_zone", "from", "to", "bucket", "points"} <= set(series["properties"])
    point = component(schema, series["properties"]["points"]["items"])
    assert {"time", "count", "start", "mean", "peak", "zones"} <= set(point["properties"])
    frame = schema["paths"]["/api/v1/frames/{id}/"]["get"]["responses"]["200"]["content"]["application/json"]
    assert {"count", "zones", "model", "links", "counted_on"} <= set(component(schema, frame["schema"])["properties"])
