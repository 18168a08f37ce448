import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest
import requests

from tests import settings as test_settings

REPO = Path(__file__).resolve().parent.parent


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


@dataclass(frozen=True)
class S3Server:
    """The session's S3 server on loopback (moto's server mode) and its bucket."""

    endpoint_url: str
    bucket: str

    def client(self, endpoint_url: str | None = None):
        return boto3.client(
            "s3",
            endpoint_url=endpoint_url or self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="crowdscope-tests",
            aws_secret_access_key="crowdscope-tests",
        )

    def storage(self, location: str, endpoint_url: str | None = None) -> dict:
        """STORAGES["default"] for the bucket's folder `location` (through `endpoint_url`, a proxy in front of the
        server, when given), as webapp/settings.py makes it for CROWDSCOPE_STORAGE=s3 but quick to give up."""
        from botocore.config import Config

        options = {
            "bucket_name": self.bucket,
            "endpoint_url": endpoint_url or self.endpoint_url,
            "region_name": "us-east-1",
            "access_key": "crowdscope-tests",
            "secret_key": "crowdscope-tests",
            "location": location,
            "default_acl": None,
            "file_overwrite": True,
            "client_config": Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 2}),
        }
        return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}

    def keys(self, prefix: str) -> list[str]:
        """Every object's key under `prefix/` in the bucket, read from the server itself."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=f"{prefix}/")
        return sorted(entry["Key"] for page in pages for entry in page.get("Contents", ()))


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
