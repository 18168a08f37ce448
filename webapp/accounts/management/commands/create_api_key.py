from django.core.management.base import BaseCommand, CommandError

from webapp.accounts.models import ApiKey
from webapp.cameras.models import Site


class Command(BaseCommand):
    help = "Create a read-only API key and print it (shown once: only its hash is stored)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="who uses the key, e.g. home-assistant")
        parser.add_argument(
            "--role", choices=["viewer"], default="viewer", help="what the key may do: read as a viewer (the only one)"
        )
        parser.add_argument("--sites", nargs="+", metavar="SITE", help="only these sites (by name); default every site")

    def handle(self, name: str, **options) -> None:
        if ApiKey.objects.filter(name=name).exists():
            raise CommandError(f"an API key named {name!r} exists already")
        sites = list(Site.objects.filter(name__in=options["sites"] or []))
        unknown = sorted(set(options["sites"] or []) - {site.name for site in sites})
        if unknown:
            raise CommandError(f"no site named {', '.join(map(repr, unknown))}")
        api_key = ApiKey(name=name, all_sites=not options["sites"])
        key = api_key.issue_secret()
        api_key.save()
        api_key.sites.set(sites)
        self.stdout.write(key)
        scope = ", ".join(sorted(site.name for site in sites)) or "every site"
        self.stderr.write(
            f"API key {name!r} (id {api_key.pk}, role viewer, {scope}): send it as 'Authorization: Bearer <key>'"
        )
