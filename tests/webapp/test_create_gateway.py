"""`manage.py create_gateway`: prints a working token once and keeps only its hash."""

import io

import pytest
from django.core.management import CommandError, call_command

from tests.factories import token_client
from webapp.cameras.auth import LAST_SEEN_RESOLUTION
from webapp.cameras.models import Gateway, hash_token

pytestmark = pytest.mark.django_db


def create_gateway(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_gateway", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_printed_token_authenticates(camera, other_camera):
    out, err = create_gateway("north-gateway", "--camera", str(camera.pk), "--camera", str(other_camera.pk))

    token = out.strip()
    assert out == f"{token}\n", "stdout carries the token alone, for scripts"
    assert len(token) >= 40
    gateway = Gateway.objects.get(name="north-gateway")
    assert set(gateway.cameras.all()) == {camera, other_camera}
    assert f"id {gateway.pk}" in err
    response = token_client(token).get(f"/api/v1/cameras/{camera.pk}/counts/")
    assert response.status_code == 200
    assert Gateway.objects.get(pk=gateway.pk).last_seen_at is not None


def test_last_seen_is_written_at_most_once_per_resolution(camera):
    token = create_gateway("north-gateway", "--camera", str(camera.pk))[0].strip()
    client, url = token_client(token), f"/api/v1/cameras/{camera.pk}/counts/"
    gateway = Gateway.objects.get(name="north-gateway")

    client.get(url)
    first = Gateway.objects.get(pk=gateway.pk).last_seen_at
    client.get(url)
    assert Gateway.objects.get(pk=gateway.pk).last_seen_at == first
    Gateway.objects.filter(pk=gateway.pk).update(last_seen_at=first - LAST_SEEN_RESOLUTION)
    client.get(url)
    assert Gateway.objects.get(pk=gateway.pk).last_seen_at > first


def test_only_the_hash_of_the_token_is_stored(camera):
    out, _ = create_gateway("north-gateway", "--camera", str(camera.pk))
    token = out.strip()

    gateway = Gateway.objects.get(name="north-gateway")
    assert gateway.token_hash == hash_token(token) != token
    assert gateway.token_prefix == token[:8]
    dump = io.StringIO()
    call_command("dumpdata", "cameras", stdout=dump)
    assert hash_token(token) in dump.getvalue()
    assert token not in dump.getvalue()


def test_an_unknown_camera_is_an_error(camera):
    with pytest.raises(CommandError, match="no camera with id 4242"):
        create_gateway("north-gateway", "--camera", str(camera.pk), "--camera", "4242")
    assert not Gateway.objects.exists()


def test_a_duplicate_name_is_an_error(camera, gateway):
    with pytest.raises(CommandError, match="exists already"):
        create_gateway(gateway.name, "--camera", str(camera.pk))
    assert Gateway.objects.count() == 1
    assert token_client(gateway.token).get(f"/api/v1/cameras/{camera.pk}/counts/").status_code == 200


def test_a_camera_is_required(camera):
    with pytest.raises(CommandError):
        create_gateway("north-gateway")
    assert not Gateway.objects.exists()
