"""Roles: viewer reads, operator also acknowledges alerts and edits zones, admin also manages the registry and
users in the admin site; `set_role` gives them; an account without a role is refused everywhere."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from tests.factories import user_with_role
from webapp.accounts.roles import Role, role_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages")]


def test_set_role_puts_the_user_in_exactly_one_role():
    user = get_user_model().objects.create_user("sam")
    call_command("set_role", "sam", "operator")
    assert role_of(get_user_model().objects.get(pk=user.pk)) == Role.OPERATOR
    call_command("set_role", "sam", "viewer")
    user = get_user_model().objects.get(pk=user.pk)
    assert role_of(user) == Role.VIEWER and list(user.groups.values_list("name", flat=True)) == ["viewer"]
    call_command("set_role", "sam", "none")
    assert role_of(get_user_model().objects.get(pk=user.pk)) is None


def test_set_role_names_an_unknown_user():
    with pytest.raises(CommandError, match="no user named 'ghost'"):
        call_command("set_role", "ghost", "viewer")


def test_a_superuser_is_an_admin():
    assert role_of(get_user_model().objects.create_superuser("root", password="x")) == Role.ADMIN


def test_an_inactive_user_has_no_role():
    assert role_of(user_with_role("gone", Role.ADMIN, is_active=False)) is None


@pytest.mark.parametrize(("role", "status"), [(Role.ADMIN, 200), (Role.OPERATOR, 302), (Role.VIEWER, 302)])
def test_only_admins_manage_cameras_gateways_and_users(client, pages, role, status):
    client.force_login(user_with_role(f"user-{role.group_name}", role))
    for path in ["/admin/cameras/camera/", "/admin/cameras/gateway/", "/admin/auth/user/"]:
        assert client.get(path).status_code == status, path


def test_the_navigation_offers_admin_to_admins_only(client, pages):
    client.force_login(user_with_role("boss", Role.ADMIN))
    assert 'href="/admin/"' in client.get("/").content.decode()
    client.force_login(user_with_role("worker", Role.OPERATOR))
    assert 'href="/admin/"' not in client.get("/").content.decode()


def test_viewers_can_read_reports_but_not_request_them(viewer):
    assert viewer.get("/reports/").status_code == 200
    assert "Write a report" not in viewer.get("/reports/").content.decode()
    assert viewer.post("/reports/new/", {"period": "2026-11-30"}).status_code == 403
