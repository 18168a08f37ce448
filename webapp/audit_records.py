"""Audit entries for changes made by a queryset's `update()`, which sends no signal for django-auditlog to hear (a
conditional update is how the first acknowledgement of an alert wins, and how a camera's weights are switched)."""

from __future__ import annotations

from collections.abc import Sequence

from auditlog import get_logentry_model
from auditlog.diff import model_instance_diff
from django.db.models import Model


def log_queryset_update(before: Model, after: Model, fields: Sequence[str], actor=None, **details) -> Model | None:
    """Record in the audit log that the row `after` (as read after the update) changed from `before` (a copy of the
    same row as read before it) in `fields`, by `actor`, else by the person of the request being served as every
    entry is; `details` go into the entry's additional data. Returns the entry, or None when `fields` did not change.
    The model must be registered (webapp.audit.registration): its included and excluded fields apply."""
    changes = model_instance_diff(before, after, fields_to_check=fields)
    if not changes:
        return None
    log_entry = get_logentry_model()
    return log_entry.objects.log_create(
        after, action=log_entry.Action.UPDATE, changes=changes, actor=actor, additional_data=details or None
    )
