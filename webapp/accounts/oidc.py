"""Single sign-on with OpenID Connect (mozilla-django-oidc, authorization code flow with PKCE), beside local accounts.

Off unless CROWDSCOPE_OIDC_CLIENT_ID is set (webapp/settings.py then requires the rest): off, its views answer 404
and the sign-in page shows no "Sign in with ..." button. Local accounts sign in with their password as before.

- An account is the provider's subject: user name "oidc:<sub>", matched on nothing else. Never on the email, which
  many providers let their users change (one who set another person's address would take over that account), and
  never a local account: their names cannot hold ":" (Django's user name rules), so "oidc:ada" is not "ada".
- The provider is the truth, at every sign-in: the role is the highest of those whose groups
  (CROWDSCOPE_OIDC_ROLE_GROUPS) the groups claim holds. With none, the sign-in is refused (no account is made for
  someone CrowdScope has no role for) and an existing account loses its role at once (its open sessions too).
  The sites, when CROWDSCOPE_OIDC_SITE_GROUPS is set, are those of every site group the account is in ("*": every
  site), and no site with none; when it is not set, the sites stay as an admin sets them (a new account: every
  site). A site name the mapping gives that no site has is logged and skipped: sites are made and renamed while the
  system runs, so no start-up check could hold.
- Superuser is never granted, and is taken away from an account that signs in through the provider: its rights are
  what the provider's groups give. An account an admin deactivated stays so.
- Accounts made here have no usable password: they sign in through the provider only.
- Beyond what mozilla-django-oidc checks (signature, nonce, expiry), the ID token must come from the configured issuer
  (CROWDSCOPE_OIDC_ISSUER) for this client, and the user info must be of the ID token's subject.
- A refused sign-in (and a provider that cannot be reached) lands on the sign-in page saying why; it does not count
  against the address's password attempts (webapp.accounts.sign_in): it guesses nothing.

Sign-out ends the CrowdScope session only, not the one at the provider.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.db.models import Model
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from webapp.accounts.roles import Role, assign_role
from webapp.accounts.scope import set_site_scope
from webapp.cameras.models import Site

logger = logging.getLogger(__name__)

USERNAME_PREFIX = "oidc:"
EVERY_SITE_NAME = "*"  # in CROWDSCOPE_OIDC_SITE_GROUPS: the group sees every site


class SignInRefused(Exception):
    """A single sign-on that does not sign anyone in; its message is shown on the sign-in page."""


def single_sign_on_enabled() -> bool:
    return bool(settings.OIDC_RP_CLIENT_ID)


def username_for(subject: str) -> str:
    return f"{USERNAME_PREFIX}{subject}"


def groups_of(claims: dict) -> set[str]:
    """The groups named by the configured claim: a list of names (or one name); anything else is no group."""
    value = claims.get(settings.CROWDSCOPE_OIDC_GROUPS_CLAIM)
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return {group for group in value if isinstance(group, str)}
    if value is not None:
        logger.warning("the %r claim is neither a list nor a name: no group", settings.CROWDSCOPE_OIDC_GROUPS_CLAIM)
    return set()


def mapped_role(groups: Iterable[str]) -> Role | None:
    """The highest role whose groups (CROWDSCOPE_OIDC_ROLE_GROUPS) meet `groups`; None when none does."""
    held = set(groups)
    matched = [
        Role[name.upper()]
        for name, role_groups in settings.CROWDSCOPE_OIDC_ROLE_GROUPS.items()
        if held.intersection(role_groups)
    ]
    return max(matched, default=None)


def mapped_sites(groups: Iterable[str]) -> list[Site] | None:
    """The sites of the site groups (CROWDSCOPE_OIDC_SITE_GROUPS) among `groups`: None for every site, [] for none.
    Names in the mapping that no site has are logged (all of them, so a mistake shows at anyone's sign-in)."""
    mapping: dict[str, list[str]] = settings.CROWDSCOPE_OIDC_SITE_GROUPS
    names = {name for group in set(groups) & mapping.keys() for name in mapping[group]}
    if EVERY_SITE_NAME in names:
        return None
    configured = {name for site_names in mapping.values() for name in site_names} - {EVERY_SITE_NAME}
    sites = {site.name: site for site in Site.objects.filter(name__in=configured)}
    if unknown := sorted(configured - sites.keys()):
        logger.error("CROWDSCOPE_OIDC_SITE_GROUPS names sites that do not exist: %s", ", ".join(unknown))
    return [sites[name] for name in sorted(names & sites.keys())]


def account_for_claims(claims: dict) -> AbstractBaseUser:
    """The account the provider's user info `claims` sign in, made or brought up to date with its role, sites and
    names; SignInRefused when it may not sign in (no subject, or no role: then an existing account loses its
    role)."""
    subject = claims.get("sub")
    user_model = get_user_model()
    if not isinstance(subject, str) or not subject:
        raise SignInRefused("the provider gave no subject (sub) for this account")
    username = username_for(subject)
    if len(username) > user_model._meta.get_field("username").max_length:
        raise SignInRefused("the provider's subject (sub) of this account is too long for a CrowdScope user name")
    groups = groups_of(claims)
    role = mapped_role(groups)
    with transaction.atomic():
        user = user_model.objects.select_for_update().filter(username=username).first()
        if role is None:
            if user is not None:
                assign_role(user, None)
        else:
            if user is None:
                user = user_model(username=username)
                user.set_unusable_password()
            user.is_superuser = False
            user.email = _text_claim(claims, "email", user_model, "email")
            user.first_name = _text_claim(claims, "given_name", user_model, "first_name")
            user.last_name = _text_claim(claims, "family_name", user_model, "last_name")
            user.save()
            assign_role(user, role)
            if settings.CROWDSCOPE_OIDC_SITE_GROUPS:
                set_site_scope(user, mapped_sites(groups))
    if role is None:  # raised after the block, which keeps the role taken away
        logger.warning("single sign-on refused for %s: groups %s give no role", username, sorted(groups))
        raise SignInRefused("your account at the provider is in no group that gives a CrowdScope role")
    return user


def _text_claim(claims: dict, claim: str, user_model: type[Model], field: str) -> str:
    value = claims.get(claim)
    return value[: user_model._meta.get_field(field).max_length] if isinstance(value, str) else ""


class SingleSignOnBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend, signing in accounts by `account_for_claims`. Its `authenticate` takes only what
    the callback view passes (nonce, code_verifier), so a password sign-in never reaches it."""

    def authenticate(
        self, request: HttpRequest, nonce: str | None, code_verifier: str | None
    ) -> AbstractBaseUser | None:
        try:
            return super().authenticate(request, nonce=nonce, code_verifier=code_verifier)
        except requests.RequestException as error:
            logger.error("single sign-on: the provider did not answer as expected: %s", error)
            raise SignInRefused("the provider could not be reached or refused the sign-in; try again") from error
        except SuspiciousOperation as error:
            logger.warning("single sign-on: the provider's answer failed verification: %s", error)
            raise SignInRefused("the provider's answer failed verification") from error

    def verify_token(self, token: str, **kwargs) -> dict:
        payload = super().verify_token(token, **kwargs)
        if payload.get("iss") != settings.CROWDSCOPE_OIDC_ISSUER:
            raise SuspiciousOperation(f"ID token of issuer {payload.get('iss')!r}, not the configured one")
        audience = payload.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else []
        if self.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation(f"ID token for {audience!r}, not for this client")
        return payload

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict) -> AbstractBaseUser:
        claims = self.get_userinfo(access_token, id_token, payload)
        if claims.get("sub") != payload.get("sub"):
            raise SignInRefused("the provider's user info is of another account than its ID token")
        return account_for_claims(claims)


class _Enabled:
    """A view of single sign-on: 404 while it is off."""

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not single_sign_on_enabled():
            raise Http404("single sign-on is off")
        return super().dispatch(request, *args, **kwargs)


class SignInView(_Enabled, OIDCAuthenticationRequestView):
    """Sends the browser to the provider's authorization endpoint (with state, nonce and a PKCE challenge)."""


class CallbackView(_Enabled, OIDCAuthenticationCallbackView):
    """Where the provider sends the browser back: signs the account in, or back to the sign-in page saying why not."""

    def get(self, request: HttpRequest) -> HttpResponse:
        try:
            return super().get(request)
        except SignInRefused as refusal:
            return self._back_to_sign_in(f"Sign-in with {settings.CROWDSCOPE_OIDC_PROVIDER_NAME} refused: {refusal}.")

    def login_failure(self) -> HttpResponse:
        """The provider answered with an error (the person cancelled, say), or the account is deactivated."""
        return self._back_to_sign_in(f"Sign-in with {settings.CROWDSCOPE_OIDC_PROVIDER_NAME} did not succeed.")

    def _back_to_sign_in(self, message: str) -> HttpResponse:
        messages.error(self.request, message)
        return HttpResponseRedirect(reverse("login"))


def single_sign_on(request: HttpRequest) -> dict:
    """For templates: the provider's name for the sign-in page's button, None while single sign-on is off."""
    return {"single_sign_on": settings.CROWDSCOPE_OIDC_PROVIDER_NAME if single_sign_on_enabled() else None}


# The names are mozilla-django-oidc's own: its views reverse them.
urlpatterns = [
    path("authenticate/", SignInView.as_view(), name="oidc_authentication_init"),
    path("callback/", CallbackView.as_view(), name="oidc_authentication_callback"),
]
