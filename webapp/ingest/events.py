"""What ingest tells the apps above it, which it may not import (docs/development.md, "Apps one way"): a stored count
raises alerts (webapp.alerts) and is published to MQTT (webapp.notifications). Those apps connect in their ready()."""

from django.dispatch import Signal

# Sent inside the transaction that stores a frame's count, so that what receivers write commits or rolls back with
# it, and a receiver's error fails the storing. Arguments: frame, count, zone_counts ({zone id: count}) and recount
# (True when a recount replaces the frame's result: its alerts follow the new count, and nobody is told).
frame_counted = Signal()

# Sent once that transaction has committed, for a first count only. Arguments: frame, count, zone_counts. A receiver
# must not raise: the count is stored whatever it does.
count_committed = Signal()
