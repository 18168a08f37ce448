"""What alerts tell the apps above it (webapp.notifications connects in its ready())."""

from django.dispatch import Signal

# Sent inside the transaction that stored a frame's first count, with `changes` (webapp.alerts.rules.AlertChanges):
# the alerts the frame raised and ended. Not sent for recounts.
alerts_changed = Signal()
