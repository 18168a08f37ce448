"""An S3 server on loopback for the benches (moto's server mode, as the tests use): `with loopback_bucket() as
environment:` gives the CROWDSCOPE_STORAGE=s3 variables of a new bucket on it, and stops it on the way out."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import requests
from web_memory import free_port

KEY = "crowdscope-bench"


@contextmanager
def loopback_bucket(bucket: str = "crowdscope-bench") -> Iterator[dict[str, str]]:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="crowdscope-s3-") as folder:
        log = (Path(folder) / "moto.log").open("ab")
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        server = subprocess.Popen(command, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    requests.get(f"{endpoint}/moto-api/", timeout=5)
                    break
                except requests.ConnectionError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("moto's S3 server did not start") from None
                    time.sleep(0.1)
            client = boto3.client(
                "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=KEY, aws_secret_access_key=KEY
            )
            client.create_bucket(Bucket=bucket)
            yield {
                "CROWDSCOPE_STORAGE": "s3",
                "CROWDSCOPE_S3_BUCKET": bucket,
                "CROWDSCOPE_S3_ENDPOINT_URL": endpoint,
                "CROWDSCOPE_S3_ACCESS_KEY_ID": KEY,
                "CROWDSCOPE_S3_SECRET_ACCESS_KEY": KEY,
            }
        finally:
            server.terminate()
            server.wait(timeout=20)
            log.close()
