from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from webapp.accounts.roles import Role, assign_role

ROLE_NAMES = {role.group_name: role for role in Role}


class Command(BaseCommand):
    help = "Give a user a role: viewer (reads), operator (acknowledges alerts, edits zones), admin; or none."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("role", choices=[*ROLE_NAMES, "none"])

    def handle(self, username: str, role: str, **options) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}; create one with createsuperuser or in the admin")
        assign_role(user, ROLE_NAMES.get(role))
        self.stdout.write(f"{username}: {role}")
