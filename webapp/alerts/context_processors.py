from webapp.accounts.roles import role_of
from webapp.accounts.scope import scoped
from webapp.alerts.models import Alert


def open_alerts(request) -> dict:
    """How many alerts of the sites the user sees are open (navigation bar, banners); 0 for one without a role."""
    user = getattr(request, "user", None)
    if role_of(user) is None:
        return {"open_alert_count": 0}
    return {"open_alert_count": scoped(Alert.objects.filter(state=Alert.State.OPEN), user).count()}
