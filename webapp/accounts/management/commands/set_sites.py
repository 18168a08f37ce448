from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from webapp.accounts.scope import set_site_scope
from webapp.cameras.models import Site


class Command(BaseCommand):
    help = "Give a person some sites (by name), or every site with --all: they then see only those sites' cameras."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("sites", nargs="*", help="site names; none and no --all: no site at all")
        parser.add_argument("--all", action="store_true", help="every site, present and future")

    def handle(self, username: str, sites: list[str], **options) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        if options["all"] and sites:
            raise CommandError("give site names or --all, not both")
        found = {site.name: site for site in Site.objects.filter(name__in=sites)}
        unknown = sorted(set(sites) - set(found))
        if unknown:
            known = ", ".join(Site.objects.order_by("name").values_list("name", flat=True)) or "none yet"
            raise CommandError(f"no site named {', '.join(map(repr, unknown))}; the sites: {known}")
        set_site_scope(user, None if options["all"] else found.values())
        self.stdout.write(f"{username}: {'every site' if options['all'] else ', '.join(sorted(found)) or 'no site'}")
