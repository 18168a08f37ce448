"""Single sign-on (webapp.accounts.oidc): what the provider's claims make of an account (role, sites, never superuser,
never a local account), sign-ins through a real OpenID Connect provider on loopback without a browser (the browser's
is tests/browser/test_oidc_sign_in.py), and the settings an operator writes."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model

from tests import REPO
from tests.factories import user_with_role
from tests.oidc_provider import CALLBACK_PATH, LoopbackProvider, running_provider, sign_in_without_a_browser
from tests.webapp.test_settings import clean_environment, read_settings
from webapp.accounts.oidc import SignInRefused, account_for_claims
from webapp.accounts.roles import Role, role_of
from webapp.accounts.scope import EVERY_SITE, set_site_scope, visible_site_ids
from webapp.cameras.models import Site

ROLE_GROUPS = {"admin": ["city-it-admins"], "operator": ["crowd-operators", "night-ops"], "viewer": ["crowd-viewers"]}
SITE_GROUPS = {"district-north": ["North Station", "Harbour"], "all-sites": ["*"]}


@pytest.fixture
def mapping(settings) -> None:
    settings.OIDC_RP_CLIENT_ID = "crowdscope"
    settings.CROWDSCOPE_OIDC_ROLE_GROUPS = ROLE_GROUPS
    settings.CROWDSCOPE_OIDC_SITE_GROUPS = SITE_GROUPS


@pytest.fixture
def sites(db) -> dict[str, Site]:
    return {name: Site.objects.create(name=name) for name in ("North Station", "Harbour", "South Depot")}


def site_names(user) -> set[str] | None:
    seen = visible_site_ids(get_user_model().objects.get(pk=user.pk))
    return None if seen is EVERY_SITE else set(Site.objects.filter(pk__in=seen).values_list("name", flat=True))


def fresh_role(user) -> Role | None:
    return role_of(get_user_model().objects.get(pk=user.pk))


def test_the_groups_claim_gives_the_highest_role_and_the_sites_of_the_site_groups(mapping, sites):
    claims = {
        "sub": "0f3c-ada",
        "groups": ["crowd-viewers", "night-ops", "district-north", "unrelated"],
        "email": "ada@example.org",
        "given_name": "Ada",
        "family_name": "Lovelace",
    }
    user = account_for_claims(claims)
    assert user.username == "oidc:0f3c-ada"
    assert (user.email, user.first_name, user.last_name) == ("ada@example.org", "Ada", "Lovelace")
    assert fresh_role(user) == Role.OPERATOR
    assert site_names(user) == {"North Station", "Harbour"}
    assert not user.has_usable_password()  # it signs in through the provider only
    assert not user.is_superuser and not user.is_staff


def test_every_sign_in_applies_the_provider_s_groups_anew(mapping, sites):
    user = account_for_claims({"sub": "ada", "groups": ["crowd-operators", "district-north"]})
    assert account_for_claims({"sub": "ada", "groups": ["city-it-admins", "all-sites"]}).pk == user.pk
    assert fresh_role(user) == Role.ADMIN and get_user_model().objects.get(pk=user.pk).is_staff
    account_for_claims({"sub": "ada", "groups": ["crowd-viewers", "all-sites"]})
    assert fresh_role(user) == Role.VIEWER and not get_user_model().objects.get(pk=user.pk).is_staff
    assert site_names(user) is None  # "*": every site
    account_for_claims({"sub": "ada", "groups": ["crowd-viewers"]})
    assert site_names(user) == set()  # in no site group: no site
    assert get_user_model().objects.filter(username__startswith="oidc:").count() == 1


def test_no_mapped_group_refuses_the_sign_in_and_takes_the_role_away(mapping, sites):
    with pytest.raises(SignInRefused, match="no group that gives a CrowdScope role"):
        account_for_claims({"sub": "stranger", "groups": ["district-north"]})
    assert not get_user_model().objects.filter(username="oidc:stranger").exists()  # no account for no role

    user = account_for_claims({"sub": "ada", "groups": ["crowd-operators"]})
    with pytest.raises(SignInRefused):
        account_for_claims({"sub": "ada", "groups": []})
    assert fresh_role(user) is None  # her open sessions see nothing from now on


def test_superuser_is_never_granted_and_is_taken_from_an_account_signing_in_through_the_provider(mapping, sites):
    user = account_for_claims({"sub": "ada", "groups": ["city-it-admins"], "is_superuser": True, "is_staff": True})
    assert not user.is_superuser
    get_user_model().objects.filter(pk=user.pk).update(is_superuser=True)
    account_for_claims({"sub": "ada", "groups": ["crowd-viewers"]})
    user.refresh_from_db()
    assert not user.is_superuser and fresh_role(user) == Role.VIEWER


def test_a_local_account_of_the_same_name_or_email_is_not_taken_over(mapping, sites):
    local = user_with_role("ada", Role.VIEWER, email="ada@example.org")
    local.set_password("the local password")
    local.save()
    set_site_scope(local, [sites["South Depot"]])

    signed_in = account_for_claims({"sub": "ada", "email": "ada@example.org", "groups": ["city-it-admins"]})
    assert signed_in.pk != local.pk and signed_in.username == "oidc:ada"
    local.refresh_from_db()
    assert fresh_role(local) == Role.VIEWER and site_names(local) == {"South Depot"}
    assert local.check_password("the local password") and not local.is_staff


def test_without_site_groups_the_sites_stay_as_an_admin_set_them(settings, mapping, sites):
    settings.CROWDSCOPE_OIDC_SITE_GROUPS = {}
    user = account_for_claims({"sub": "ada", "groups": ["crowd-operators"]})
    assert site_names(user) is None  # a new account: every site
    set_site_scope(user, [sites["Harbour"]])
    account_for_claims({"sub": "ada", "groups": ["crowd-operators", "district-north"]})
    assert site_names(user) == {"Harbour"}


def test_site_names_no_site_has_are_logged_and_skipped(settings, mapping, sites, caplog):
    settings.CROWDSCOPE_OIDC_SITE_GROUPS = {"district-north": ["North Station", "Nort Station"], "east": ["Eastgate"]}
    with caplog.at_level(logging.ERROR, logger="webapp.accounts.oidc"):
        user = account_for_claims({"sub": "ada", "groups": ["crowd-operators", "district-north"]})
    assert site_names(user) == {"North Station"}
    assert "sites that do not exist: Eastgate, Nort Station" in caplog.text


def test_the_groups_claim_is_named_by_the_settings_and_may_be_a_single_name(settings, mapping, sites):
    settings.CROWDSCOPE_OIDC_GROUPS_CLAIM = "roles"
    user = account_for_claims({"sub": "ada", "roles": "crowd-operators", "groups": ["city-it-admins"]})
    assert fresh_role(user) == Role.OPERATOR
    with pytest.raises(SignInRefused):
        account_for_claims({"sub": "bob", "roles": {"crowd-operators": True}})


@pytest.mark.parametrize("subject", [None, "", 7, "x" * 146])
def test_a_subject_that_is_missing_or_cannot_be_a_user_name_is_refused(mapping, sites, subject):
    with pytest.raises(SignInRefused, match="subject"):
        account_for_claims({"sub": subject, "groups": ["crowd-operators"]})
    assert not get_user_model().objects.filter(username__startswith="oidc:").exists()


# Through the provider, without a browser.


@pytest.fixture(scope="module")
def provider(tmp_path_factory, live_server) -> Iterator[LoopbackProvider]:
    with running_provider(tmp_path_factory.mktemp("oidc"), f"{live_server.url}{CALLBACK_PATH}") as running:
        yield running


@pytest.fixture
def single_sign_on(settings, provider, transactional_db) -> LoopbackProvider:
    settings.DEBUG = True  # static files from the finders, as the pages' tests serve them
    provider.configure(settings, role_groups=ROLE_GROUPS, site_groups=SITE_GROUPS)
    return provider


def test_groups_changed_at_the_provider_change_the_account_at_its_next_sign_in(single_sign_on, live_server):
    Site.objects.create(name="North Station")
    single_sign_on.set_account("grace", groups=["crowd-operators", "district-north"], email="grace@example.org")
    _, landed = sign_in_without_a_browser(live_server.url, "grace")
    assert landed.url == f"{live_server.url}/", landed.text[:500]
    user = get_user_model().objects.get(username="oidc:grace")
    assert (fresh_role(user), site_names(user), user.email) == (Role.OPERATOR, {"North Station"}, "grace@example.org")

    single_sign_on.set_account("grace", groups=["crowd-viewers", "all-sites"])
    _, landed = sign_in_without_a_browser(live_server.url, "grace")
    assert landed.url == f"{live_server.url}/"
    assert (fresh_role(user), site_names(user)) == (Role.VIEWER, None)

    single_sign_on.set_account("grace", groups=["district-north"])
    _, landed = sign_in_without_a_browser(live_server.url, "grace")
    assert landed.url.startswith(f"{live_server.url}/accounts/login/")
    assert "Sign-in with City Login refused: your account at the provider is in no group" in landed.text
    assert fresh_role(user) is None
    # A refusal by the provider's groups guesses no password: the address's sign-in limit does not count it.
    assert not AccessAttempt.objects.exists()


def test_an_id_token_of_another_issuer_is_refused(settings, single_sign_on, live_server):
    """A provider other than the configured one (a mix-up, or a provider's second tenant at the same endpoints) signs
    no one in, though its tokens are well signed."""
    settings.CROWDSCOPE_OIDC_ISSUER = "http://127.0.0.1:9/other-tenant"
    single_sign_on.set_account("grace", groups=["city-it-admins"])
    _, landed = sign_in_without_a_browser(live_server.url, "grace")
    assert landed.url.startswith(f"{live_server.url}/accounts/login/")
    assert "answer failed verification" in landed.text
    assert not get_user_model().objects.filter(username="oidc:grace").exists()


def test_local_accounts_sign_in_with_their_password_beside_the_provider(single_sign_on, live_server):
    local = user_with_role("olivia", Role.OPERATOR)
    local.set_password("olivia's own password")
    local.save()
    session, _ = sign_in_without_a_browser(live_server.url, "nobody-at-all")  # refused: no groups
    login = session.get(f"{live_server.url}/accounts/login/", timeout=20)
    assert "Sign in with City Login" in login.text
    landed = session.post(
        login.url,
        data={
            "username": "olivia",
            "password": "olivia's own password",
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        timeout=20,
    )
    assert landed.url == f"{live_server.url}/"
    assert "olivia" in landed.text


def test_with_single_sign_on_off_its_views_answer_404_and_the_page_has_no_button(client, db, pages):
    assert "Sign in with" not in client.get("/accounts/login/").content.decode()
    assert client.get("/accounts/oidc/authenticate/").status_code == 404
    assert client.get("/accounts/oidc/callback/?code=x&state=y").status_code == 404


# The settings, as an operator writes them.

OPERATOR_SETTINGS = {
    "CROWDSCOPE_OIDC_CLIENT_ID": "crowdscope",
    "CROWDSCOPE_OIDC_CLIENT_SECRET": "secret",
    "CROWDSCOPE_OIDC_ISSUER": "https://login.example.org",
    "CROWDSCOPE_OIDC_AUTHORIZATION_ENDPOINT": "https://login.example.org/auth",
    "CROWDSCOPE_OIDC_TOKEN_ENDPOINT": "https://login.example.org/token",
    "CROWDSCOPE_OIDC_USERINFO_ENDPOINT": "https://login.example.org/me",
    "CROWDSCOPE_OIDC_JWKS_ENDPOINT": "https://login.example.org/jwks",
    "CROWDSCOPE_OIDC_ROLE_GROUPS": "admin=city-it-admins, operator=crowd-operators;night-ops, viewer=crowd-viewers",
    "CROWDSCOPE_OIDC_SITE_GROUPS": "district-north=North Station;Harbour,all-sites=*",
}


def test_the_settings_read_the_group_mappings_and_turn_the_backend_on():
    read = read_settings(
        ["CROWDSCOPE_OIDC_ROLE_GROUPS", "CROWDSCOPE_OIDC_SITE_GROUPS", "AUTHENTICATION_BACKENDS"],
        DJANGO_DEBUG="true",
        **OPERATOR_SETTINGS,
    )
    assert read["CROWDSCOPE_OIDC_ROLE_GROUPS"] == {
        "admin": ["city-it-admins"],
        "operator": ["crowd-operators", "night-ops"],
        "viewer": ["crowd-viewers"],
    }
    assert read["CROWDSCOPE_OIDC_SITE_GROUPS"] == {"district-north": ["North Station", "Harbour"], "all-sites": ["*"]}
    assert read["AUTHENTICATION_BACKENDS"][-1] == "webapp.accounts.oidc.SingleSignOnBackend"


@pytest.mark.parametrize(
    ("variables", "error"),
    [
        ({"CROWDSCOPE_OIDC_ROLE_GROUPS": "superuser=city-it-admins"}, "no role superuser"),
        ({"CROWDSCOPE_OIDC_SITE_GROUPS": "district-north"}, "'district-north' is not NAME=VALUE;VALUE"),
        (
            {"CROWDSCOPE_OIDC_TOKEN_ENDPOINT": "", "CROWDSCOPE_OIDC_ISSUER": ""},
            "needs CROWDSCOPE_OIDC_ISSUER, CROWDSCOPE_OIDC_TOKEN_ENDPOINT",
        ),
    ],
)
def test_settings_that_cannot_work_stop_the_start_naming_the_variable(variables, error):
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=REPO,
        env=clean_environment(DJANGO_DEBUG="true", **{**OPERATOR_SETTINGS, **variables}),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert error in result.stderr
