"""Servers the tests start on loopback: a free port to put them on, an SMTP handler that keeps what it is sent, and
the S3 server of the session (tests/conftest.py starts it)."""

from __future__ import annotations

import email
import socket
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage

import boto3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Inbox:
    """An SMTP server's handler that keeps what it is sent; `refuse` answers that many DATA commands with 451."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self.refuse = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.refuse:
            self.refuse -= 1
            return "451 4.3.0 try again later"
        self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"


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
