from zoneinfo import available_timezones

from django import forms

from webapp.accounts.scope import visible_cameras, visible_sites
from webapp.reports.models import Subscription


class SubscriptionForm(forms.ModelForm):
    timezone = forms.ChoiceField(choices=[(name, name) for name in sorted(available_timezones())])

    class Meta:
        model = Subscription
        fields = ["active", "cameras", "sites", "send_at", "timezone"]
        widgets = {
            "cameras": forms.CheckboxSelectMultiple,
            "sites": forms.CheckboxSelectMultiple,
            "send_at": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        }
        labels = {"active": "Send me the daily report", "send_at": "Local time of day"}

    def __init__(self, *args, user, **kwargs) -> None:
        """Offers only the cameras and sites `user` sees."""
        super().__init__(*args, **kwargs)
        self.fields["cameras"].queryset = visible_cameras(user, self.fields["cameras"].queryset)
        self.fields["sites"].queryset = visible_sites(user, self.fields["sites"].queryset)
