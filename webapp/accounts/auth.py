"""API keys on the REST API: `Authorization: Bearer <key>`."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension

from webapp.accounts.models import ApiKey
from webapp.cameras.auth import HashedSecretAuthentication


class ApiKeyAuthentication(HashedSecretAuthentication):
    keyword, credential, last_used_field = "Bearer", "API key", "last_used_at"

    def principal(self, secret: str) -> ApiKey | None:
        return ApiKey.from_key(secret)


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = ApiKeyAuthentication
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "a read-only API key (manage.py create_api_key)"}
