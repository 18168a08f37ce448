"""Request rates per gateway token and per person: past the rate, 429 with Retry-After; other callers unaffected."""

import pytest
from django.core.cache import cache

from tests.factories import gateway_with_token, token_client
from webapp.accounts.roles import Role

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_counts():
    cache.clear()
    yield
    cache.clear()


def test_a_gateway_past_its_rate_gets_429_with_retry_after_and_others_go_on(settings, camera, api):
    settings.CROWDSCOPE_GATEWAY_RATE = "3/min"
    url = f"/api/v1/cameras/{camera.pk}/counts/"
    assert [api.get(url).status_code for _ in range(3)] == [200, 200, 200]
    refused = api.get(url)
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60
    assert "throttled" in refused.json()["detail"].lower()
    other = token_client(gateway_with_token("other-gateway", camera).token)
    assert other.get(url).status_code == 200


def test_a_person_past_their_rate_gets_429(settings, camera, sign_in):
    settings.CROWDSCOPE_USER_RATE = "2/min"
    viewer = sign_in(Role.VIEWER)
    url = f"/api/v1/cameras/{camera.pk}/counts/"
    assert [viewer.get(url).status_code for _ in range(3)] == [200, 200, 429]
    settings.CROWDSCOPE_USER_RATE = ""  # no limit
    assert viewer.get(url).status_code == 200
