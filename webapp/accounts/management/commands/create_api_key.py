from django.core.management.base import BaseCommand, CommandError

from webapp.accounts.models import ApiKey


class Command(BaseCommand):
    help = "Create a read-only API key and print it (shown once: only its hash is stored)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="who uses the key, e.g. home-assistant")
        parser.add_argument(
            "--role", choices=["viewer"], default="viewer", help="what the key may do: read as a viewer (the only one)"
        )

    def handle(self, name: str, **options) -> None:
        if ApiKey.objects.filter(name=name).exists():
            raise CommandError(f"an API key named {name!r} exists already")
        api_key = ApiKey(name=name)
        key = api_key.issue_key()
        api_key.save()
        self.stdout.write(key)
        self.stderr.write(f"API key {name!r} (id {api_key.pk}, role viewer): send it as 'Authorization: Bearer <key>'")
