"""The `stack` fixture: a running stack (tests/e2e/stack.py) on PostgreSQL, then on SQLite, for each module using it."""

from collections.abc import Iterator

import pytest

from tests.e2e.stack import REDIS_DATABASES, Stack, running_stack


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def stack(request, tmp_path_factory) -> Iterator[Stack]:
    kind = request.param
    with running_stack(kind, tmp_path_factory.mktemp(f"stack-{kind}"), REDIS_DATABASES[kind]) as running:
        yield running
