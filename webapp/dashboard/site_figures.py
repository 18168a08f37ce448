"""The site page's figures kept in Django's cache, once a site and local hour: they change only as hours complete
(`analytics`), so a request reads what the first request of the hour, or the warm shortly after the hour began,
computed. Redis (CROWDSCOPE_CACHE_URL) shares them between the web processes and the worker that warms them; without
it each web process computes and keeps its own.

An entry's key holds the site, its time zone, the start of its local hour, the compare range and its cameras' ids and
names: a camera added, removed, moved or renamed, or the site's clock changed, reads a new key at once, and the old
entry expires with its hour.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.cache import cache

from webapp.cameras.models import Camera, Site
from webapp.dashboard.analytics import COMPARE_DAYS, local_hour_start, site_analytics_by_compare_days
from webapp.ingest.usual import HOUR

# The beat warms every quarter hour the sites whose local hour began less than this long ago: whole-hour zones at
# minute 6, and sites on a half- or quarter-hour offset (India, Nepal) in their own quarter.
WARM_WITHIN = timedelta(minutes=15)


@dataclass(frozen=True)
class SiteFigures:
    figures: dict  # analytics.site_analytics's JSON for the charts
    as_of: datetime  # the start of the site's local hour: the figures hold the hours complete by then
    computed_at: datetime


def figures_key(site: Site, cameras: list[Camera], compare_days: int, as_of: datetime) -> str:
    """The cache key of the site's figures over `compare_days` for the local hour starting at `as_of`."""
    structure = json.dumps(sorted((camera.pk, camera.name) for camera in cameras))
    digest = hashlib.sha256(structure.encode()).hexdigest()[:20]
    return f"site-figures:{site.pk}:{site.time_zone}:{int(as_of.timestamp())}:{compare_days}:{digest}"


def compute_site_figures(site: Site, cameras: list[Camera], now: datetime) -> dict[int, SiteFigures]:
    """The site's figures of `now`'s local hour for every range of `COMPARE_DAYS`, computed and stored in the cache
    (replacing what it held) for the rest of the hour: compare days -> figures."""
    as_of = local_hour_start(now, site.zone)
    computed = {
        days: SiteFigures(figures, as_of, now)
        for days, figures in site_analytics_by_compare_days(cameras, site.zone, now, COMPARE_DAYS).items()
    }
    # Kept an hour: by then the hour it was computed in is over and its key no longer read.
    cache.set_many(
        {figures_key(site, cameras, days, as_of): entry for days, entry in computed.items()},
        timeout=HOUR.total_seconds(),
    )
    return computed


def site_figures(site: Site, cameras: list[Camera], now: datetime, compare_days: int) -> SiteFigures:
    """The site's figures over `compare_days` (one of `COMPARE_DAYS`) for `now`'s local hour: from the cache, else
    computed and stored for the next requests of the hour."""
    if compare_days not in COMPARE_DAYS:
        raise ValueError(f"compare_days must be one of {COMPARE_DAYS}, not {compare_days}")
    cached = cache.get(figures_key(site, cameras, compare_days, local_hour_start(now, site.zone)))
    if cached is not None:
        return cached
    return compute_site_figures(site, cameras, now)[compare_days]


def warm_site_figures(now: datetime, begun_within: timedelta | None = None) -> list[Site]:
    """Compute and store the figures of every site for its local hour at `now` (with `begun_within`: only of the sites
    whose local hour began less than that long ago); the sites warmed."""
    warmed = []
    for site in Site.objects.order_by("pk"):
        if begun_within is not None and now - local_hour_start(now, site.zone) >= begun_within:
            continue
        compute_site_figures(site, list(site.cameras.all()), now)
        warmed.append(site)
    return warmed
