from django.core.management.base import BaseCommand
from django.utils import timezone

from webapp.dashboard.site_figures import warm_site_figures


class Command(BaseCommand):
    help = (
        "Compute every site page's figures for the site's current local hour into the cache the web processes read "
        "(CROWDSCOPE_CACHE_URL), as the beat does for each site shortly after its hour begins; say which sites."
    )

    def handle(self, **options) -> None:
        warmed = warm_site_figures(timezone.now())
        for site in warmed:
            self.stdout.write(f"warmed: {site.name} ({site.cameras.count()} cameras)")
        if not warmed:
            self.stdout.write("no site to warm")
