"""API keys (read-only access to the REST API for integrations: Home Assistant, a BI tool, a script; stored only as
a hash, created in the admin or by `manage.py create_api_key`) and the sites that people and keys may see."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from webapp.cameras.models import HashedSecretPrincipal, Site


class SiteAccess(models.Model):
    """Which sites a principal sees: every site (present and future), or only `sites`. Cameras of no site are seen
    only with every site. `webapp.accounts.scope` applies it."""

    all_sites = models.BooleanField(default=True, help_text="sees every site, present and future")
    sites = models.ManyToManyField(Site, blank=True, related_name="+", help_text="the sites seen when not every site")

    class Meta:
        abstract = True


class SiteScope(SiteAccess):
    """A person's sites. A person without one sees every site; admins always do (they manage the registry)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="site_scope")

    class Meta:
        verbose_name = "site scope"

    def __str__(self) -> str:
        return f"sites of {self.user}"


class ApiKey(SiteAccess, HashedSecretPrincipal):
    """A service's key (`Authorization: Bearer <key>`): reads what a viewer reads; writes nothing."""

    SECRET_HASH_FIELD, SECRET_PREFIX_FIELD, LAST_USED_FIELD = "key_hash", "key_prefix", "last_used_at"

    name = models.CharField(max_length=100, unique=True, help_text="who uses it, e.g. home-assistant")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    key_prefix = models.CharField(
        max_length=HashedSecretPrincipal.SECRET_PREFIX_LENGTH, editable=False, help_text="to recognise a key"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return self.name
