"""Endpoints' secrets apart from their URLs (issue 41): the password of an MQTT URL moves to the endpoint's secret;
a webhook URL loses its user information (its receiver checks the signature; nowhere else could hold a password);
and the delivery log keeps no receiver's answer (an error "HTTP 500: <body>" keeps "HTTP 500")."""

import re
from urllib.parse import unquote, urlsplit, urlunsplit

from django.db import migrations, models

# How dispatch.deliver wrote a refused webhook delivery before: the status code, then up to 200 characters of body.
ANSWERED_WITH_BODY = re.compile(r"^(ConnectionError: HTTP \d{3}): .*", re.DOTALL)


def split_password(url: str) -> tuple[str, str, str]:
    """(the URL without its password, the URL without any user information, the password percent-decoded)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    kept_user = f"{parts.username}@{host}" if parts.username else host
    return (
        urlunsplit(parts._replace(netloc=kept_user)),
        urlunsplit(parts._replace(netloc=host)),
        unquote(parts.password or ""),
    )


def secrets_out_of_urls(apps, schema_editor) -> None:
    Endpoint = apps.get_model("notifications", "Endpoint")
    for endpoint in Endpoint.objects.filter(url__contains="@"):
        try:
            without_password, without_user, password = split_password(endpoint.url)
        except ValueError:  # a URL that does not parse (a bad port): nothing can be sent to it; left for its owner
            continue
        if endpoint.kind == "mqtt" and password:
            endpoint.url, endpoint.secret = without_password, password
        elif endpoint.kind == "webhook":
            endpoint.url = without_user
        else:
            continue
        endpoint.save(update_fields=["url", "secret"])


def answers_out_of_the_log(apps, schema_editor) -> None:
    Notification = apps.get_model("notifications", "Notification")
    for notification in Notification.objects.filter(last_error__regex=r"^ConnectionError: HTTP [0-9]{3}: "):
        notification.last_error = ANSWERED_WITH_BODY.sub(r"\1", notification.last_error)
        notification.save(update_fields=["last_error"])


class Migration(migrations.Migration):
    dependencies = [("notifications", "0001_initial")]

    operations = [
        migrations.AlterField(
            model_name="endpoint",
            name="url",
            field=models.CharField(
                blank=True,
                help_text=(
                    "webhook: http(s)://...; MQTT: mqtt://[user@]host[:1883] (a password written here moves to the "
                    "secret)"
                ),
                max_length=500,
            ),
        ),
        migrations.AlterField(
            model_name="endpoint",
            name="secret",
            field=models.CharField(
                blank=True,
                help_text=(
                    "webhook: the HMAC-SHA256 key of the signature (made when left empty); MQTT: the broker's password"
                ),
                max_length=200,
            ),
        ),
        # Forward only: putting passwords back into URLs and answers back into the log is what this undoes.
        migrations.RunPython(secrets_out_of_urls, migrations.RunPython.noop),
        migrations.RunPython(answers_out_of_the_log, migrations.RunPython.noop),
    ]
