"""The admin pages of accounts: API keys, and users and groups with no way for a role to grant itself more.

A person with the admin role manages users (and gives roles, the admin role included: that is their job), but only a
superuser makes a superuser, changes or deletes one, or changes what a group may do: for anyone else `is_superuser`
and a user's own permissions are read-only, superuser accounts are read-only, the role groups are read-only, and only
groups whose every permission the editor holds can be given or taken.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.http import HttpRequest

from webapp.accounts.models import ApiKey, SiteScope
from webapp.accounts.roles import Role

# Read-only to anyone but a superuser: what would make its holder (or anyone) more than an admin.
SUPERUSER_ONLY_USER_FIELDS = ("is_superuser", "user_permissions")


def _lacking(editor, permissions) -> list[str]:
    """The names ("app.codename") of those of `permissions` that `editor` does not hold (a superuser holds all)."""
    if editor.is_superuser:
        return []
    held = editor.get_all_permissions()
    names = {f"{p.content_type.app_label}.{p.codename}" for p in permissions}
    return sorted(names - held)


def _ungrantable_groups(editor, groups) -> list[str]:
    """The names of the groups among `groups` holding a permission that `editor` lacks."""
    return sorted(group.name for group in groups if _lacking(editor, group.permissions.select_related("content_type")))


def _is_role_group(group: Group | None) -> bool:
    return group is not None and group.name in {role.group_name for role in Role}


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "key_prefix", "is_active", "all_sites", "created_at", "last_used_at"]
    fields = ["name", "is_active", "all_sites", "sites", "key_prefix", "created_at", "last_used_at"]
    readonly_fields = ["key_prefix", "created_at", "last_used_at"]
    filter_horizontal = ["sites"]

    def save_model(self, request, obj: ApiKey, form, change: bool) -> None:
        if not change:
            key = obj.issue_secret()
            messages.warning(request, f"Key for {obj.name} (shown once, store it where it is used): {key}")
        super().save_model(request, obj, form, change)


admin.site.unregister(User)
admin.site.unregister(Group)


class SiteScopeInline(admin.StackedInline):
    """The sites a viewer or operator sees (`webapp.accounts.scope`); without one, every site."""

    model = SiteScope
    can_delete = False
    filter_horizontal = ["sites"]
    verbose_name_plural = "sites seen (admins see every site whatever is chosen here)"


@admin.register(User)
class AccountAdmin(UserAdmin):
    """Django's user admin, with the limits above for editors who are not superusers, and the person's sites."""

    inlines = [SiteScopeInline]

    def get_readonly_fields(self, request: HttpRequest, obj: User | None = None) -> tuple[str, ...]:
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields if request.user.is_superuser else fields + SUPERUSER_ONLY_USER_FIELDS

    def has_change_permission(self, request: HttpRequest, obj: User | None = None) -> bool:
        # Also guards the password change view (UserAdmin.user_change_password asks this).
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: User | None = None) -> bool:
        # Asked per object by the changelist's "delete selected" action too.
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)

    def get_form(self, request: HttpRequest, obj: User | None = None, **kwargs) -> type[forms.ModelForm]:
        form = super().get_form(request, obj, **kwargs)
        if "groups" not in form.base_fields:  # the add form: no groups yet
            return form
        editor = request.user

        class GroupsWithinTheEditorsPermissions(form):
            def clean_groups(self):
                chosen = set(self.cleaned_data["groups"])
                before = set(self.instance.groups.all()) if self.instance.pk else set()
                refused = _ungrantable_groups(editor, chosen ^ before)
                if refused:
                    raise forms.ValidationError(f"Only a superuser can give or take: {', '.join(refused)}.")
                return self.cleaned_data["groups"]

        return GroupsWithinTheEditorsPermissions


@admin.register(Group)
class RoleGroupAdmin(GroupAdmin):
    """Django's group admin; the role groups (their permissions are set by `ensure_role_groups` after every migrate)
    are read-only to anyone but a superuser, and other groups may hold only permissions their editor holds."""

    def has_change_permission(self, request: HttpRequest, obj: Group | None = None) -> bool:
        if _is_role_group(obj) and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Group | None = None) -> bool:
        if _is_role_group(obj) and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)

    def get_form(self, request: HttpRequest, obj: Group | None = None, **kwargs) -> type[forms.ModelForm]:
        form = super().get_form(request, obj, **kwargs)
        editor = request.user

        class PermissionsWithinTheEditors(form):
            def clean_permissions(self):
                chosen = set(self.cleaned_data["permissions"])
                before = set(self.instance.permissions.all()) if self.instance.pk else set()
                lacking = _lacking(editor, chosen ^ before)
                if lacking:
                    raise forms.ValidationError(f"Only a superuser can give or take these: {', '.join(lacking)}.")
                return self.cleaned_data["permissions"]

        return PermissionsWithinTheEditors
