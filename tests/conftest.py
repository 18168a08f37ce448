"""Fixtures of every test (the shared data, the session's S3 server) and the markers each test gets from where it is
and what it reads: `e2e` (tests/e2e), `browser` (tests/browser), `slow` (runs the real models at length) and
`needs_data` (reads ../shared/data), so that `make test-fast` can leave the slow ones out."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests import REPO
from tests import settings as test_settings
from tests.loopback import S3Server

TESTS = Path(__file__).resolve().parent
MARKED_FOLDERS = {TESTS / "e2e": "e2e", TESTS / "browser": "browser"}
# Modules whose tests run the real models at length (training, benchmarks, the local LLM, batches of frames through
# the engine, adaptation through the product): 4 minutes of 9 on 2 cores (2026-12-07), left out of `make test-fast`.
SLOW_MODULES = {
    TESTS / "counting" / "test_bench.py",
    TESTS / "counting" / "test_count_scale.py",
    TESTS / "counting" / "test_engine_batch.py",
    TESTS / "counting" / "test_onnx_export.py",
    TESTS / "counting" / "test_train.py",
    TESTS / "llm_reports" / "test_evaluation.py",
    TESTS / "llm_reports" / "test_llm.py",
    TESTS / "llm_reports" / "test_report.py",
    TESTS / "webapp" / "test_adaptation.py",
    TESTS / "webapp" / "test_generate_report_command.py",
    TESTS / "webapp" / "test_object_storage.py",
}
# The fixtures that read ../shared/data; a test that uses one, however indirectly, needs the data.
SHARED_DATA_FIXTURES = {"shared_data"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for folder, marker in MARKED_FOLDERS.items():
            if item.path.is_relative_to(folder):
                item.add_marker(marker)
        if item.path in SLOW_MODULES:
            item.add_marker("slow")
        if SHARED_DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker("needs_data")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = Path(os.environ.get("CROWDSCOPE_DATA", REPO.parent / "shared" / "data"))
    if not (path / "shanghaitech").is_dir():
        pytest.fail(f"the shared data folder is missing at {path}; set CROWDSCOPE_DATA")
    return path


@pytest.fixture(scope="session")
def shanghaitech(shared_data: Path) -> Path:
    return shared_data / "shanghaitech"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ground-truth caches written by tests go to a temporary folder, never into the repository."""
    monkeypatch.setenv("CROWDSCOPE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 server, a process of its own on the port tests/settings.py chose (the run's media storage under
    CROWDSCOPE_TEST_STORAGE=s3), with the tests' bucket."""
    endpoint = os.environ["CROWDSCOPE_TEST_S3_ENDPOINT_URL"]
    log = (tmp_path_factory.mktemp("s3") / "moto.log").open("ab")
    port = str(urlsplit(endpoint).port)
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", port], stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{endpoint}/moto-api/", timeout=5)
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"moto's S3 server did not start; see {log.name}") from None
                time.sleep(0.1)
        server = S3Server(endpoint, os.environ["CROWDSCOPE_TEST_S3_BUCKET"])
        server.client().create_bucket(Bucket=server.bucket)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


@pytest.fixture(scope="session", autouse=True)
def media_storage_of_the_run(request: pytest.FixtureRequest) -> None:
    """Under CROWDSCOPE_TEST_STORAGE=s3 every test's media storage is the session's bucket: its server runs first."""
    if test_settings.TEST_STORAGE == "s3":
        request.getfixturevalue("s3_server")
