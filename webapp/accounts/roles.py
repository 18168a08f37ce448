"""Roles: viewer (reads everything), operator (also acknowledges alerts and edits zones), admin (also manages
cameras, gateways and users in the admin). A role is a Django group of the same name; a superuser is an admin.

A signed-in account with none of these groups has no role and sees nothing: access is granted, never assumed.
"""

from __future__ import annotations

from enum import IntEnum
from functools import wraps

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied

from webapp.accounts.models import ApiKey


class Role(IntEnum):
    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @property
    def group_name(self) -> str:
        return self.name.lower()


def role_of(user) -> Role | None:
    """The highest role the user holds, or None (anonymous, inactive, or in no role's group)."""
    if isinstance(user, ApiKey):
        return Role.VIEWER if user.is_active else None  # keys read, and nothing more
    # A gateway's token is no person (nor is an anonymous visitor): it holds no role.
    if not isinstance(user, AbstractBaseUser) or not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMIN
    cached = getattr(user, "_crowdscope_role", False)
    if cached is not False:
        return cached
    names = set(user.groups.values_list("name", flat=True))
    held = [role for role in Role if role.group_name in names]
    user._crowdscope_role = max(held) if held else None
    return user._crowdscope_role


def has_role(user, role: Role) -> bool:
    held = role_of(user)
    return held is not None and held >= role


def role_required(role: Role):
    """A view for signed-in users holding at least `role`; others signed in get 403, anonymous ones the login page."""

    def decorate(view):
        @wraps(view)
        @login_required
        def guarded(request, *args, **kwargs):
            if not has_role(request.user, role):
                raise PermissionDenied(f"this needs the {role.group_name} role")
            return view(request, *args, **kwargs)

        return guarded

    return decorate


def assign_role(user, role: Role | None) -> None:
    """Put the user in exactly one role's group (None: no role). Admins get into the admin site (is_staff)."""
    from django.contrib.auth.models import Group

    user.groups.remove(*Group.objects.filter(name__in=[r.group_name for r in Role]))
    if role is not None:
        user.groups.add(Group.objects.get(name=role.group_name))
    user.is_staff = role == Role.ADMIN or user.is_superuser
    user.save(update_fields=["is_staff"])
    user.__dict__.pop("_crowdscope_role", None)
