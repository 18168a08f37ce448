"""API keys (read-only access to the REST API for integrations: Home Assistant, a BI tool, a script; stored only as
a hash, created in the admin or by `manage.py create_api_key`) and the sites that people and keys may see."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models

from webapp.cameras.models import Site, hash_token


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


class ApiKey(SiteAccess):
    """A service's key (`Authorization: Bearer <key>`): reads what a viewer reads; writes nothing."""

    PREFIX_LENGTH = 8

    name = models.CharField(max_length=100, unique=True, help_text="who uses it, e.g. home-assistant")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    key_prefix = models.CharField(max_length=PREFIX_LENGTH, editable=False, help_text="to recognise a key")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return self.name

    # DRF treats whatever authentication returns as request.user; a key is an authenticated principal.
    is_authenticated = True

    def issue_key(self) -> str:
        """A new key replaces the old one; the caller shows it once, since only its hash is kept."""
        key = secrets.token_urlsafe(32)
        self.key_hash = hash_token(key)
        self.key_prefix = key[: self.PREFIX_LENGTH]
        return key

    @classmethod
    def from_key(cls, key: str) -> ApiKey | None:
        return cls.objects.filter(key_hash=hash_token(key), is_active=True).first()
