"""An S3 server on loopback for the benches (moto's server mode, as the tests use): `with loopback_bucket() as
bucket:` gives the CROWDSCOPE_STORAGE=s3 variables of a new bucket on it (`bucket.environment`) and the CPU time
the server has used so far (`bucket.cpu_seconds()`: it runs on the cores it is measured on), and stops it on the way
out."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
import requests
from web_memory import free_port

KEY = "crowdscope-bench"


@dataclass(frozen=True)
class LoopbackBucket:
    environment: dict[str, str]
    pid: int

    def cpu_seconds(self) -> float:
        """User and system CPU time of the server process so far (Linux)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def loopback_bucket(bucket: str = "crowdscope-bench") -> Iterator[LoopbackBucket]:
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
            environment = {
                "CROWDSCOPE_STORAGE": "s3",
                "CROWDSCOPE_S3_BUCKET": bucket,
                "CROWDSCOPE_S3_ENDPOINT_URL": endpoint,
                "CROWDSCOPE_S3_ACCESS_KEY_ID": KEY,
                "CROWDSCOPE_S3_SECRET_ACCESS_KEY": KEY,
            }
            yield LoopbackBucket(environment, server.pid)
        finally:
            server.terminate()
            server.wait(timeout=20)
            log.close()
