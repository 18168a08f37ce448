from webapp.accounts.roles import Role, role_of


def role(request) -> dict:
    """The user's role and what it allows, for templates; and how many alerts are open (navigation bar, banners)."""
    held = role_of(getattr(request, "user", None))
    context = {
        "role": held,
        "can_operate": held is not None and held >= Role.OPERATOR,
        "can_administer": held is not None and held >= Role.ADMIN,
        "open_alert_count": 0,
    }
    if held is not None:
        from webapp.accounts.scope import scoped
        from webapp.alerts.models import Alert

        context["open_alert_count"] = scoped(Alert.objects.filter(state=Alert.State.OPEN), request.user).count()
    return context
