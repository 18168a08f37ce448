"""The OpenID Connect provider of the single sign-on tests: panva's oidc-provider (provider.mjs), run by node on a free
loopback port; `make test` installs it (npm ci in this folder, from package-lock.json)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

from tests.loopback import free_port

FOLDER = Path(__file__).resolve().parent
CLIENT_ID = "crowdscope"
CLIENT_SECRET = "crowdscope-test-client-secret"
CALLBACK_PATH = "/accounts/oidc/callback/"


@dataclass
class LoopbackProvider:
    """A running provider: its issuer URL and its accounts (login -> claims besides `sub`), which it reads again at
    every sign-in."""

    issuer: str
    accounts_file: Path

    def set_account(self, login: str, **claims) -> None:
        accounts = json.loads(self.accounts_file.read_text())
        accounts[login] = claims
        self.accounts_file.write_text(json.dumps(accounts))

    def configure(self, settings, **mapping: dict[str, list[str]]) -> None:
        """Turn single sign-on on in Django's `settings` (pytest-django's fixture) for this provider, with the
        endpoints of its discovery document, as an operator copies them, and the role and site groups `mapping`
        (role_groups=, site_groups=)."""
        discovery = requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=10).json()
        settings.OIDC_RP_CLIENT_ID = CLIENT_ID
        settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
        settings.CROWDSCOPE_OIDC_ISSUER = discovery["issuer"]
        settings.OIDC_OP_AUTHORIZATION_ENDPOINT = discovery["authorization_endpoint"]
        settings.OIDC_OP_TOKEN_ENDPOINT = discovery["token_endpoint"]
        settings.OIDC_OP_USER_ENDPOINT = discovery["userinfo_endpoint"]
        settings.OIDC_OP_JWKS_ENDPOINT = discovery["jwks_uri"]
        settings.OIDC_RP_SCOPES = "openid email profile groups"
        settings.CROWDSCOPE_OIDC_PROVIDER_NAME = "City Login"
        settings.CROWDSCOPE_OIDC_ROLE_GROUPS = mapping.get("role_groups", {})
        settings.CROWDSCOPE_OIDC_SITE_GROUPS = mapping.get("site_groups", {})
        settings.AUTHENTICATION_BACKENDS = [
            *settings.AUTHENTICATION_BACKENDS,
            "webapp.accounts.oidc.SingleSignOnBackend",
        ]


@contextmanager
def running_provider(folder: Path, redirect_uri: str) -> Iterator[LoopbackProvider]:
    """The provider on loopback, its one client (CLIENT_ID) sending browsers back to `redirect_uri`; its log in
    `folder`."""
    if not (FOLDER / "node_modules" / "oidc-provider").is_dir():
        pytest.fail(f"the test OIDC provider is not installed: `make test` runs `npm ci --prefix {FOLDER}`")
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing: the test OIDC provider runs on Node.js")
    port = free_port()
    accounts = folder / "accounts.json"
    accounts.write_text("{}")
    config = folder / "provider.json"
    client = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [redirect_uri]}
    config.write_text(json.dumps({"port": port, "client": client, "accounts": str(accounts)}))
    log_path = folder / "provider.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen([node, str(FOLDER / "provider.mjs"), str(config)], stdout=log, stderr=log)
    provider = LoopbackProvider(f"http://127.0.0.1:{port}", accounts)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{provider.issuer}/.well-known/openid-configuration", timeout=5).raise_for_status()
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the test OIDC provider did not start: {log_path.read_text()}") from None
                time.sleep(0.1)
        yield provider
    finally:
        process.terminate()
        process.wait(timeout=10)


def sign_in_without_a_browser(base_url: str, login: str) -> tuple[requests.Session, requests.Response]:
    """Sign-in as a browser does it, with `requests` (cookies of both servers kept): CrowdScope's single sign-on link,
    the provider's sign-in form (any password), and back through the callback. The session and its last answer."""
    session = requests.Session()
    form = session.get(f"{base_url}/accounts/oidc/authenticate/", timeout=20)
    form.raise_for_status()
    action = re.search(r'<form[^>]*action="([^"]+)"', form.text)
    assert action, f"no sign-in form at the provider: {form.text[:500]}"
    data = {"prompt": "login", "login": login, "password": "any password"}
    return session, session.post(urljoin(form.url, action.group(1)), data=data, timeout=20)
