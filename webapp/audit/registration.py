"""What the audit log records (issue 41), registered with django-auditlog: each change a person makes to the registry
(sites; cameras with their thresholds and the weights version counting them; zones; gateways), to notifications
(endpoints and their rules), to roles and site scopes (users' groups and flags, the role groups' permissions, site
scopes, API keys), and each acknowledgement of an alert.

django-auditlog hears saves, deletions and many-to-many changes through model signals. A queryset's `update()` sends
none: the places that switch a camera's weights or acknowledge an alert that way call
`webapp.audit_records.log_queryset_update`.

Left out: secrets (password hashes, token and key hashes, an endpoint's secret and the password inside an MQTT URL),
and what software rather than a person writes: a gateway's or key's last use, a user's last sign-in, and alerts as the
workers raise, follow and end them.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from auditlog import get_logentry_model
from auditlog.registry import auditlog
from auditlog.signals import pre_log
from django.db.models import Model


def is_secret(name: str) -> bool:
    """Whether a field of this name holds a secret or what proves one (a password, a webhook secret, a token's hash):
    by name, so that a field added later (an MQTT password) stays out without this module being told."""
    return "secret" in name or "password" in name or name.endswith("_hash")


def audited_fields(model: type[Model], *left_out: str) -> list[str]:
    """The model's own columns but its secrets and `left_out`: what its entries record. Named, because
    django-auditlog's diff of a creation or deletion otherwise takes in reverse relations too (`frames` of a camera
    as "ingest.Frame.None")."""
    return [
        field.name for field in model._meta.concrete_fields if not is_secret(field.name) and field.name not in left_out
    ]


def url_without_password(url: str) -> str:
    """`url` with the password of its user part replaced by ***, as the audit log keeps an endpoint's URL
    (mqtt://user:password@host); a URL that does not parse is not kept at all."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "(a URL that does not parse; not kept)"
    if password is None:
        return url
    user_part, _, host_part = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user_part.partition(':')[0]}:***@{host_part}"))


def only_acknowledgements(sender, instance, action, **_) -> bool:
    """django-auditlog's pre_log hook for alerts: workers create alerts and delete them with their camera, which is no
    person's change of an alert; only updates (of the acknowledgement fields alone) are recorded."""
    return action == get_logentry_model().Action.UPDATE


def register_audited_models() -> None:
    """Register the audited models with django-auditlog (once, from the app's ready())."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from webapp.accounts.models import ApiKey, SiteScope
    from webapp.alerts.models import Alert
    from webapp.cameras.models import Camera, Gateway, Site, Zone
    from webapp.notifications.models import Endpoint, NotificationRule

    user = get_user_model()
    for model in (Site, Camera, Zone, NotificationRule):
        auditlog.register(model, include_fields=audited_fields(model))
    auditlog.register(Gateway, include_fields=audited_fields(Gateway, "last_seen_at"), m2m_fields={"cameras"})
    auditlog.register(
        Endpoint,
        include_fields=audited_fields(Endpoint),
        mask_fields=["url"],
        mask_callable="webapp.audit.registration.url_without_password",
    )
    # Not the last sign-in (software writes it), nor the date joined: set once, then rewritten without its fraction
    # of a second by each save of the admin's form, which is no change.
    auditlog.register(
        user,
        include_fields=audited_fields(user, "last_login", "date_joined"),
        m2m_fields={"groups", "user_permissions"},
    )
    auditlog.register(Group, include_fields=audited_fields(Group), m2m_fields={"permissions"})
    auditlog.register(SiteScope, include_fields=audited_fields(SiteScope), m2m_fields={"sites"})
    auditlog.register(ApiKey, include_fields=audited_fields(ApiKey, "last_used_at"), m2m_fields={"sites"})
    auditlog.register(Alert, include_fields=list(Alert.ACKNOWLEDGEMENT_FIELDS))
    pre_log.connect(only_acknowledgements, sender=Alert, dispatch_uid="crowdscope-audit-alerts")
