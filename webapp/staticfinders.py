"""Serve the plotly.min.js that the plotly Python package ships, as `static/plotly/plotly.min.js` (no CDN)."""

from __future__ import annotations

from pathlib import Path

import plotly
from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

PLOTLY_JS = "plotly/plotly.min.js"


class PlotlyFinder(BaseFinder):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        folder = Path(plotly.__file__).resolve().parent / "package_data"
        self.storage = FileSystemStorage(location=folder)
        self.storage.prefix = "plotly"
        self.source = folder / "plotly.min.js"

    def check(self, **kwargs) -> list:
        return []

    def find(self, path: str, find_all: bool = False, **kwargs) -> str | list[str] | None:
        if path != PLOTLY_JS:
            return [] if find_all else None
        return [str(self.source)] if find_all else str(self.source)

    def list(self, ignore_patterns):
        yield "plotly.min.js", self.storage
