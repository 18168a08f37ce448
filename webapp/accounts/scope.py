"""Sites per person: which sites, and so which cameras, a principal may see.

Every view that shows cameras or anything of a camera (frames, counts, alerts, zones, reports, calibration) narrows
its query with `visible_cameras` or `scoped`, and looks a single object up so that one of another site is a 404,
never a 403 that would confirm it exists. `tests/webapp/test_site_scope.py` walks the URL configuration and fails on
a view that shows another site's camera.

- Superusers and the admin role see every site (they manage the registry).
- Viewers, operators and API keys see every site unless given a scope of some sites (`SiteScope`, `ApiKey.sites`).
- Anyone else (anonymous, a gateway on people's endpoints) sees no site.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Model, QuerySet
from django.http import Http404

from webapp.accounts.models import ApiKey, SiteScope
from webapp.accounts.roles import Role, role_of
from webapp.cameras.models import Camera, Site

EVERY_SITE = None  # what `visible_site_ids` answers for a principal who sees every site


def visible_site_ids(principal) -> frozenset[int] | None:
    """The ids of the sites the principal sees, or EVERY_SITE (None): every site, and cameras of no site."""
    cached = getattr(principal, "_crowdscope_sites", False)
    if cached is not False:
        return cached
    seen = _seen_site_ids(principal)
    if isinstance(principal, Model):  # cached for the request: the principal is loaded once per request
        principal._crowdscope_sites = seen
    return seen


def _seen_site_ids(principal) -> frozenset[int] | None:
    role = role_of(principal)  # None for anonymous visitors and gateways: no site
    if role is None:
        return frozenset()
    if role == Role.ADMIN:
        return EVERY_SITE
    access = principal if isinstance(principal, ApiKey) else SiteScope.objects.filter(user=principal).first()
    if access is None or access.all_sites:
        return EVERY_SITE
    return frozenset(access.sites.values_list("pk", flat=True))


def sees_every_site(principal) -> bool:
    return visible_site_ids(principal) is EVERY_SITE


def visible_sites(principal, sites: QuerySet[Site] | None = None) -> QuerySet[Site]:
    sites = Site.objects.all() if sites is None else sites
    seen = visible_site_ids(principal)
    return sites if seen is EVERY_SITE else sites.filter(pk__in=seen)


def scoped(queryset: QuerySet, principal, camera_path: str = "camera") -> QuerySet:
    """`queryset` narrowed to rows whose camera (reached by `camera_path`, "" for cameras themselves) the principal
    sees."""
    seen = visible_site_ids(principal)
    if seen is EVERY_SITE:
        return queryset
    site_field = f"{camera_path}__site_id__in" if camera_path else "site_id__in"
    return queryset.filter(**{site_field: seen})


def visible_cameras(principal, cameras: QuerySet[Camera] | None = None) -> QuerySet[Camera]:
    return scoped(Camera.objects.all() if cameras is None else cameras, principal, camera_path="")


def sees_camera(principal, camera: Camera) -> bool:
    seen = visible_site_ids(principal)
    return seen is EVERY_SITE or camera.site_id in seen


def camera_or_404(principal, pk, cameras: QuerySet[Camera] | None = None) -> Camera:
    """The camera `pk` if the principal sees it; a 404 for one that does not exist and one of another site alike."""
    camera = visible_cameras(principal, cameras).filter(pk=pk).first()
    if camera is None:
        raise Http404("no such camera")
    return camera


def site_or_404(principal, pk) -> Site:
    site = visible_sites(principal).filter(pk=pk).first()
    if site is None:
        raise Http404("no such site")
    return site


def set_site_scope(user: AbstractBaseUser, sites: Iterable[Site] | None) -> None:
    """Give a person every site (None) or exactly `sites`."""
    scope, _ = SiteScope.objects.get_or_create(user=user)
    scope.all_sites = sites is None
    scope.save(update_fields=["all_sites"])
    scope.sites.set([] if sites is None else list(sites))
    user.__dict__.pop("_crowdscope_sites", None)
