"""Count series as CSV (`?format=csv` on the counts endpoint): one row a frame or bucket, one column a zone."""

from __future__ import annotations

import csv
import io

from rest_framework.renderers import BaseRenderer


class CountsCSVRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if not isinstance(data, dict) or "points" not in data:
            # An error (bad query, no access) keeps its message, in the format that was asked for.
            writer.writerow(["error"])
            writer.writerow([data])
            return buffer.getvalue().encode()
        points = data["points"]
        zones = sorted({name for point in points for name in point["zones"]})
        if data["bucket"] == "raw":
            writer.writerow(["time", "frame", "count", *(f"zone {name}" for name in zones)])
            for point in points:
                writer.writerow(
                    [point["time"], point["frame"], _number(point["count"])]
                    + [_number(point["zones"].get(name)) for name in zones]
                )
        else:
            zone_columns = [f"zone {name} {stat}" for name in zones for stat in ("mean", "peak")]
            writer.writerow(["start", "frames", "mean", "peak", *zone_columns])
            for point in points:
                zone_values = [
                    _number(point["zones"].get(name, {}).get(stat)) for name in zones for stat in ("mean", "peak")
                ]
                writer.writerow(
                    [point["start"], point["frames"], _number(point["mean"]), _number(point["peak"]), *zone_values]
                )
        return buffer.getvalue().encode()


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"
