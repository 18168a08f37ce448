from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "webapp.accounts"
    label = "accounts"

    def ready(self) -> None:
        from webapp.accounts.groups import ensure_role_groups

        # After migrations, when the models' permissions exist (a data migration would run before them). The signal
        # comes once per app, each after its own permissions are made, so the last one sees them all.
        post_migrate.connect(ensure_role_groups, dispatch_uid="crowdscope-role-groups")
