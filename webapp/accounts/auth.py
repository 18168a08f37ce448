"""API keys on the REST API: `Authorization: Bearer <key>`."""

from __future__ import annotations

from webapp.accounts.models import ApiKey
from webapp.cameras.auth import HashedSecretAuthentication


class ApiKeyAuthentication(HashedSecretAuthentication):
    model, keyword, credential = ApiKey, "Bearer", "API key"
    scheme_name = "apiKey"
    security_scheme = {
        "type": "http",
        "scheme": "bearer",
        "description": "a read-only API key (manage.py create_api_key)",
    }
