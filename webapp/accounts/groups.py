"""The role groups, made (or brought up to date) after every `migrate`."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

from webapp.accounts.roles import Role

# What an admin manages in the admin site: the registry, users (their sites too), API keys and groups, the stored
# alerts and reports; and the audit log, whose admin only reads.
ADMIN_APPS = ("cameras", "auth", "accounts", "alerts", "reports", "ingest", "auditlog")
# Of `auth`, admins manage users and see groups; changing what a group (a role) may do, or permissions themselves,
# would let an admin grant itself anything: only superusers do that.
SUPERUSER_ONLY_AUTH_PERMISSIONS = (
    "add_group",
    "change_group",
    "delete_group",
    "add_permission",
    "change_permission",
    "delete_permission",
    "view_permission",
)


def ensure_role_groups(**_) -> None:
    for role in Role:
        Group.objects.get_or_create(name=role.group_name)
    admin = Group.objects.get(name=Role.ADMIN.group_name)
    admin.permissions.set(
        Permission.objects.filter(content_type__app_label__in=ADMIN_APPS).exclude(
            content_type__app_label="auth", codename__in=SUPERUSER_ONLY_AUTH_PERMISSIONS
        )
    )
