from webapp.accounts.roles import Role, role_of


def role(request) -> dict:
    """The user's role and what it allows, for templates; and the open alerts for the navigation bar."""
    held = role_of(getattr(request, "user", None))
    context = {
        "role": held,
        "can_operate": held is not None and held >= Role.OPERATOR,
        "can_administer": held is not None and held >= Role.ADMIN,
        "nav_open_alerts": 0,
    }
    if held is not None:
        from webapp.alerts.models import Alert

        context["nav_open_alerts"] = Alert.objects.filter(state=Alert.State.OPEN).count()
    return context
