from webapp.accounts.roles import Role, role_of


def role(request) -> dict:
    """The user's role and what it allows, for templates (open alerts: `webapp.alerts.context_processors`)."""
    held = role_of(getattr(request, "user", None))
    return {
        "role": held,
        "can_operate": held is not None and held >= Role.OPERATOR,
        "can_administer": held is not None and held >= Role.ADMIN,
    }
