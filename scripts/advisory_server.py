"""PyPI's advisory database (github.com/pypa/advisory-database) served on loopback with the OSV query API, which
pip-audit speaks (`--vulnerability-service osv --osv-url URL`), so that the dependency audit needs no internet.

The data is one archive of the repository (`git archive`, which `make advisories` writes outside the repo): a YAML file
per advisory in the OSV schema under `*/vulns/<package>/`. `AdvisoryData.load` reads it; `serving` answers
`POST /v1/query` with `{"package": {"name", "ecosystem": "PyPI"}, "version"}` as api.osv.dev does: `{"vulns": [...]}`
with every advisory that affects that release, `{}` when none does.
"""

from __future__ import annotations

import json
import os
import tarfile
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import yaml
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

REPO = Path(__file__).resolve().parent.parent
# Outside the repo, beside the imported data sets (../data, `make advisories`), or where CROWDSCOPE_ADVISORIES says.
ARCHIVE = Path(
    os.environ.get("CROWDSCOPE_ADVISORIES", REPO.parent / "data" / "advisories" / "pypa-advisory-database.tar.gz")
)
TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
# OSV's introduced "0": every release, down to the earliest PEP 440 can spell (below 0a1 and 0.dev1, which "0" is not).
EARLIEST = Version("0.dev0")


class OsvLoader(yaml.CSafeLoader):
    """The safe YAML loader, leaving timestamps as the text the record holds (RFC 3339, as the JSON API serves them
    and pip-audit parses them) rather than turning them into datetimes that JSON cannot carry."""

    yaml_implicit_resolvers: ClassVar[dict[str | None, list]] = {
        first: [(tag, pattern) for tag, pattern in resolvers if tag != TIMESTAMP_TAG]
        for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
    }


def parsed_version(text: str) -> Version | None:
    """`text` as a PEP 440 version; None when it is not one (a few old records hold such versions)."""
    try:
        return Version(text)
    except InvalidVersion:
        return None


def in_range(events: list[dict[str, str]], version: Version) -> bool:
    """Whether `version` lies in an OSV ECOSYSTEM range, by the schema's algorithm: the events in version order
    ("0" first), affected from an `introduced`, no longer from a `fixed` (that release on) or past a `last_affected`.
    An event whose version is not PEP 440 cannot be placed and is passed over: a range whose fix cannot be read
    stays open (reported as affected) rather than hiding an advisory."""
    placed = []
    for event in events:
        for kind, text in event.items():
            if kind == "introduced" and text == "0":
                placed.append((EARLIEST, kind))
            elif kind in ("introduced", "fixed", "last_affected") and (at := parsed_version(text)) is not None:
                placed.append((at, kind))
    affected = False
    for at, kind in sorted(placed, key=lambda placed_event: placed_event[0]):
        if kind == "introduced" and version >= at:
            affected = True
        elif (kind == "fixed" and version >= at) or (kind == "last_affected" and version > at):
            affected = False
    return affected


def affects(record: dict, package: str, version: Version) -> bool:
    """Whether the OSV `record` affects release `version` of PyPI package `package` (a canonical name): listed in an
    `affected` entry's `versions`, or inside one of its ECOSYSTEM ranges (GIT ranges name commits, not releases)."""
    for affected in record.get("affected", []):
        named = affected["package"]
        if named["ecosystem"] != "PyPI" or canonicalize_name(named["name"]) != package:
            continue
        if version in {parsed_version(listed) for listed in affected.get("versions", [])}:
            return True
        if any(r["type"] == "ECOSYSTEM" and in_range(r["events"], version) for r in affected.get("ranges", [])):
            return True
    return False


@dataclass(frozen=True)
class AdvisoryData:
    """The advisories of one archive, by the canonical name of each PyPI package they name."""

    path: Path
    commit: str | None  # the repository's commit, which `git archive` records in the archive; None when absent
    committed: datetime  # that commit's time (every file of the archive carries it)
    by_package: dict[str, list[dict]]

    @classmethod
    def load(cls, path: Path) -> AdvisoryData:
        """Every advisory in the archive at `path`. Raises OSError when it cannot be read, ValueError when it is not an
        archive of OSV records or holds none."""
        by_package: dict[str, list[dict]] = defaultdict(list)
        newest = 0
        try:
            with tarfile.open(path) as archive:
                commit = archive.pax_headers.get("comment")
                for member in archive:
                    if not (member.isfile() and "/vulns/" in f"/{member.name}" and member.name.endswith(".yaml")):
                        continue
                    newest = max(newest, member.mtime)
                    record = yaml.load(archive.extractfile(member), Loader=OsvLoader)
                    for name in {canonicalize_name(a["package"]["name"]) for a in record.get("affected", [])}:
                        by_package[name].append(record)
        except (tarfile.TarError, EOFError, yaml.YAMLError, KeyError, TypeError) as error:
            raise ValueError(f"{path} is not an archive of OSV records: {error!r}") from error
        if not by_package:
            raise ValueError(f"{path} holds no advisory (vulns/<package>/*.yaml)")
        return cls(path, commit, datetime.fromtimestamp(newest, UTC), dict(by_package))

    def query(self, package: str, version: Version) -> list[dict]:
        """The advisories that affect release `version` of PyPI package `package` (any spelling of its name)."""
        name = canonicalize_name(package)
        return [record for record in self.by_package.get(name, []) if affects(record, name, version)]

    def describe(self, now: datetime) -> str:
        """Which data this is, for the audit's output: commit, date, age at `now`, size and file."""
        advisories = len({record["id"] for records in self.by_package.values() for record in records})
        commit = self.commit[:12] if self.commit else "an unknown commit"
        age = (now - self.committed).days
        return (
            f"pypa/advisory-database at {commit} of {self.committed:%Y-%m-%d} ({age} days old: advisories published "
            f"since are not checked), {advisories} advisories, from {self.path}"
        )


class OsvQueryHandler(BaseHTTPRequestHandler):
    """`POST /v1/query` of the OSV API over the server's `advisories`; a clear 400 for a query it cannot read."""

    protocol_version = "HTTP/1.1"  # keep-alive: pip-audit sends one query per package over one session
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms wait for an ACK between them
    server: AdvisoryServer

    def do_POST(self) -> None:
        if self.path != "/v1/query":
            self.answer(404, {"error": f"no such endpoint: {self.path} (POST /v1/query)"})
            return
        try:
            query = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            package, release = query["package"], query["version"]
            name, ecosystem, version = package["name"], package["ecosystem"], Version(release)
        except (ValueError, KeyError, TypeError) as error:
            self.answer(400, {"error": f"not an OSV query by package and version: {error!r}"})
            return
        vulns = self.server.advisories.query(name, version) if ecosystem == "PyPI" else []
        self.answer(200, {"vulns": vulns} if vulns else {})

    def answer(self, status: int, body: dict) -> None:
        encoded = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(encoded)))
        self.end_headers()
        self.wfile.write(encoded)

    def log_message(self, format: str, *args: object) -> None:  # one line per query would drown the audit's output
        pass


class AdvisoryServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, advisories: AdvisoryData) -> None:
        super().__init__(("127.0.0.1", 0), OsvQueryHandler)
        self.advisories = advisories


@contextmanager
def serving(advisories: AdvisoryData) -> Iterator[str]:
    """The OSV query URL of `advisories` served on a free loopback port, until the block ends."""
    server = AdvisoryServer(advisories)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1/query"
    finally:
        server.shutdown()
        server.server_close()
