"""Single sign-on in a browser: the sign-in page's "Sign in with ..." button, a real OpenID Connect provider on loopback
(panva's oidc-provider, tests/oidc_provider), and back to the dashboard with the role and the site its groups give."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model

from tests.browser.pages import VIEWPORT
from tests.oidc_provider import CALLBACK_PATH, LoopbackProvider, running_provider
from webapp.accounts.roles import Role, role_of
from webapp.accounts.scope import visible_site_ids
from webapp.cameras.models import Camera, Site


@pytest.fixture
def provider(tmp_path, live_server) -> Iterator[LoopbackProvider]:
    with running_provider(tmp_path, f"{live_server.url}{CALLBACK_PATH}") as running:
        yield running


def test_sign_in_with_the_provider_lands_on_the_dashboard_with_the_groups_role_and_site(
    browser, live_server, provider, settings, transactional_db, screenshots
):
    provider.configure(
        settings,
        role_groups={"operator": ["crowd-operators"], "viewer": ["crowd-viewers"]},
        site_groups={"district-north": ["North Station"], "district-south": ["South Depot"]},
    )
    north = Camera.objects.create(site=Site.objects.create(name="North Station"), name="North Concourse")
    south = Camera.objects.create(site=Site.objects.create(name="South Depot"), name="South Gate")
    provider.set_account("ada", groups=["crowd-operators", "district-north"], given_name="Ada")

    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(20_000)
    try:
        page.goto(f"{live_server.url}/")  # signed out: the sign-in page
        page.screenshot(path=screenshots / "oidc-sign-in-page.png")
        page.click("text=Sign in with City Login")
        page.wait_for_url(f"{provider.issuer}/**")  # the provider's own sign-in page
        page.fill("input[name=login]", "ada")
        page.fill("input[name=password]", "ada's password at the provider")
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/")
        page.screenshot(path=screenshots / "oidc-signed-in.png")

        assert page.locator(".who").inner_text() == "oidc:ada · operator"
        assert page.locator(f'.card[data-camera="{north.pk}"] h3').inner_text() == "North Concourse"
        assert page.locator(f'.card[data-camera="{south.pk}"]').count() == 0
        assert page.goto(f"{live_server.url}/cameras/{south.pk}/").status == 404  # another site's camera
    finally:
        page.close()

    user = get_user_model().objects.get(username="oidc:ada")
    assert role_of(user) == Role.OPERATOR and not user.is_superuser
    assert visible_site_ids(user) == {north.site_id}
