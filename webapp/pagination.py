"""Cursor pagination for the REST API's lists: a page's `next` (and `previous`) link carries an opaque cursor, so
pages stay consistent while rows are added; `limit` sets the page size up to the list's maximum."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination
from rest_framework.response import Response


class ListPagination(CursorPagination):
    """Pages of `page_size` (`limit`: up to `max_page_size`) in `ordering`, the rows under `results_key`."""

    page_size = 100
    max_page_size = 1000
    page_size_query_param = "limit"
    ordering = "id"
    results_key = "results"

    def page(self, queryset, request, view, rows) -> Response:
        """The page of `queryset` the request asks for, each row made a dict by `rows` (a list -> a list)."""
        page = self.paginate_queryset(queryset, request, view=view)
        return Response(
            {"next": self.get_next_link(), "previous": self.get_previous_link(), self.results_key: rows(page)}
        )

    def get_paginated_response_schema(self, schema: dict) -> dict:
        link = {"type": "string", "format": "uri", "nullable": True}
        return {
            "type": "object",
            "required": ["next", "previous", self.results_key],
            "properties": {"next": link, "previous": link, self.results_key: schema},
        }
