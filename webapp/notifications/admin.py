from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest

from webapp.notifications.models import Endpoint, Notification, NotificationRule


class RuleInline(admin.TabularInline):
    model = NotificationRule
    extra = 1


class EndpointForm(forms.ModelForm):
    """The endpoint's secret is write-only: never rendered back, kept when left blank, replaced when given, removed
    with `forget_secret`."""

    secret = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=(
            "webhook: the HMAC-SHA256 key of the signature (made when left empty, shown once); MQTT: the broker's "
            "password. Never shown here: leave blank to keep the stored one."
        ),
    )
    forget_secret = forms.BooleanField(required=False, label="Forget the stored secret")

    class Meta:
        model = Endpoint
        fields = "__all__"

    def clean(self) -> dict:
        cleaned = super().clean()
        if not cleaned.get("secret") and not cleaned.get("forget_secret"):
            cleaned["secret"] = self.instance.secret  # the stored one ("" for a new endpoint)
        return cleaned


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    list_display = ["name", "kind", "url", "enabled"]  # the URL holds no password: save() moved it to the secret
    list_filter = ["kind", "enabled"]
    inlines = [RuleInline]

    def save_model(self, request: HttpRequest, obj: Endpoint, form: EndpointForm, change: bool) -> None:
        """A webhook signing key made here is shown once, now, for the receiver's configuration."""
        made_here = obj.kind == Endpoint.Kind.WEBHOOK and not obj.secret
        super().save_model(request, obj, form, change)
        if made_here:
            messages.warning(
                request,
                f"The signing secret of {obj.name} is {obj.secret}. Copy it to the receiver now: it is not shown again",
            )


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """The delivery log: every event sent or being sent, its attempts and the last error."""

    list_display = ["created_at", "event", "alert", "endpoint", "status", "attempts", "last_error", "delivered_at"]
    list_filter = ["status", "event", "endpoint"]
    readonly_fields = [field.name for field in Notification._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
