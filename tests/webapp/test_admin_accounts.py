"""The admin role manages users and gives roles, but cannot grant itself (or anyone) more than an admin: only a
superuser makes, changes or deletes a superuser, or changes what a group may do."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client

from tests.factories import user_with_role
from webapp.accounts.roles import Role, role_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages")]

PASSWORD = "root-passphrase-kept-secret"


@pytest.fixture
def boss(client: Client):
    """A person with the admin role, signed in to the test client."""
    boss = user_with_role("boss", Role.ADMIN)
    client.force_login(boss)
    return boss


@pytest.fixture
def root():
    return get_user_model().objects.create_superuser("root", password=PASSWORD)


def _change_form(user, **changes) -> dict:
    """A complete, valid POST of the user's admin change form, with `changes`."""
    joined = user.date_joined
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on",
        "is_staff": "on" if user.is_staff else "",
        "groups": [str(pk) for pk in user.groups.values_list("pk", flat=True)],
        "date_joined_0": joined.strftime("%Y-%m-%d"),
        "date_joined_1": joined.strftime("%H:%M:%S"),
        "initial-date_joined_0": joined.strftime("%Y-%m-%d"),
        "initial-date_joined_1": joined.strftime("%H:%M:%S"),
        "last_login_0": "",
        "last_login_1": "",
        # The inline of the user's sites (none given: every site).
        "site_scope-TOTAL_FORMS": "0",
        "site_scope-INITIAL_FORMS": "0",
    }
    data.update(changes)
    return {name: value for name, value in data.items() if value != ""}


def _fresh(user):
    return get_user_model().objects.get(pk=user.pk)


def test_an_admin_cannot_make_itself_a_superuser(client, boss):
    every_permission = [str(pk) for pk in Permission.objects.values_list("pk", flat=True)]
    answer = client.post(
        f"/admin/auth/user/{boss.pk}/change/",
        _change_form(boss, is_superuser="on", user_permissions=every_permission, first_name="Bo"),
    )
    assert answer.status_code == 302  # the form was taken...
    boss = _fresh(boss)
    assert boss.first_name == "Bo"
    assert not boss.is_superuser  # ...but not what only a superuser may give
    assert not boss.user_permissions.exists()


def test_an_admin_cannot_change_a_superusers_password(client, boss, root):
    answer = client.post(
        f"/admin/auth/user/{root.pk}/password/",
        {"password1": "taken-over-passphrase", "password2": "taken-over-passphrase", "usable_password": "true"},
    )
    assert answer.status_code == 403
    assert _fresh(root).check_password(PASSWORD)


def test_an_admin_cannot_change_or_delete_a_superuser(client, boss, root):
    assert client.post(f"/admin/auth/user/{root.pk}/change/", _change_form(root, is_active="")).status_code == 403
    assert client.post(f"/admin/auth/user/{root.pk}/delete/", {"post": "yes"}).status_code == 403
    bulk = {"action": "delete_selected", "_selected_action": [str(root.pk)], "post": "yes"}
    client.post("/admin/auth/user/", bulk)
    root = _fresh(root)
    assert root.is_active and root.is_superuser


def test_an_admin_cannot_change_what_a_role_may_do(client, boss):
    admin_group = Group.objects.get(name=Role.ADMIN.group_name)
    before = set(admin_group.permissions.values_list("pk", flat=True))
    every_permission = [str(pk) for pk in Permission.objects.values_list("pk", flat=True)]
    answer = client.post(
        f"/admin/auth/group/{admin_group.pk}/change/", {"name": "admin", "permissions": every_permission}
    )
    assert answer.status_code == 403
    assert set(admin_group.permissions.values_list("pk", flat=True)) == before
    assert client.post("/admin/auth/group/add/", {"name": "mine", "permissions": every_permission}).status_code == 403
    assert not Group.objects.filter(name="mine").exists()


def test_an_admin_gives_roles_but_not_groups_holding_more_than_it_holds(client, boss):
    sam = user_with_role("sam", Role.VIEWER)
    admin_group = Group.objects.get(name=Role.ADMIN.group_name)
    assert (
        client.post(f"/admin/auth/user/{sam.pk}/change/", _change_form(sam, groups=[str(admin_group.pk)])).status_code
        == 302
    )
    assert role_of(_fresh(sam)) == Role.ADMIN
    keepers = Group.objects.create(name="group-keepers")  # made by a superuser: changing groups is not an admin's
    keepers.permissions.set(Permission.objects.filter(content_type__app_label="auth", codename="change_group"))
    answer = client.post(
        f"/admin/auth/user/{boss.pk}/change/", _change_form(boss, groups=[str(admin_group.pk), str(keepers.pk)])
    )
    assert answer.status_code == 200
    assert "Only a superuser can give or take: group-keepers" in answer.content.decode()
    assert not _fresh(boss).groups.filter(name="group-keepers").exists()


def test_a_superuser_still_does_all_of_it(client, root):
    client.force_login(root)
    sam = user_with_role("sam", Role.VIEWER)
    assert client.post(f"/admin/auth/user/{sam.pk}/change/", _change_form(sam, is_superuser="on")).status_code == 302
    assert _fresh(sam).is_superuser


def test_an_admin_still_adds_users_and_sets_their_passwords(client, boss):
    assert client.get(f"/admin/auth/user/{boss.pk}/change/").status_code == 200
    assert client.get("/admin/auth/user/add/").status_code == 200
    sam = user_with_role("sam", Role.VIEWER)
    new_password = {"password1": "a-fresh-passphrase", "password2": "a-fresh-passphrase", "usable_password": "true"}
    assert client.post(f"/admin/auth/user/{sam.pk}/password/", new_password).status_code == 302
    assert _fresh(sam).check_password("a-fresh-passphrase")
