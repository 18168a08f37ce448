"""The role groups, made (or brought up to date) after every `migrate`."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

from webapp.accounts.roles import Role

# What an admin manages in the admin site: the registry, users and groups, and the stored alerts and reports.
ADMIN_APPS = ("cameras", "auth", "alerts", "reports", "ingest")


def ensure_role_groups(**_) -> None:
    for role in Role:
        Group.objects.get_or_create(name=role.group_name)
    admin = Group.objects.get(name=Role.ADMIN.group_name)
    admin.permissions.set(Permission.objects.filter(content_type__app_label__in=ADMIN_APPS))
