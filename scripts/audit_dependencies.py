"""The dependency audit of `make test`: pip-audit over the lock files, failing on a known vulnerability that a release
fixes.

pip-audit itself fails on any known vulnerability, fixed or not; one with no fixed release cannot be acted on by
upgrading, so it is printed as a warning instead of failing every build until upstream ships a fix.

The advisories: PyPI's advisory database (pypa/advisory-database), from its archive outside the repo
(../data/advisories/, written by `make advisories`; or `--advisories PATH`), served on loopback with the OSV API
(scripts/advisory_server.py), so the audit needs no internet; a package it holds no advisory for is audited clean.
Without that archive, pip-audit asks PyPI's JSON API, which may answer for no release at all (a registry proxy):
packages the service has no record of are then listed as not audited, and do not fail the audit. A service that cannot
be reached does.

Arguments not known here go to pip-audit as they are; naming a service (`--vulnerability-service osv --osv-url URL`,
or `pypi`) leaves the archive aside.
Exit status: 0 when nothing fixable was found, 1 when something was, 2 when the audit itself failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from advisory_server import ARCHIVE, AdvisoryData, serving

REPO = Path(__file__).resolve().parent.parent
# The dev lock holds every package of requirements.lock (the image's) at the same version, and the tools of the tests.
LOCK_FILES = (REPO / "requirements-dev.lock", REPO / "requirements-nodeps.lock")


@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    ids: list[str]  # the advisory's id, then its aliases (CVE, GHSA)
    fixed_in: list[str]

    def __str__(self) -> str:
        fixed = f"fixed in {', '.join(self.fixed_in)}" if self.fixed_in else "no fixed release yet"
        return f"{self.package} {self.version}: {' / '.join(self.ids)} ({fixed})"


def run_pip_audit(requirement_files: list[Path], pip_audit_arguments: list[str]) -> dict:
    """pip-audit's JSON report of `requirement_files`, which pin every package (no resolution, no pip run).
    Raises RuntimeError, with pip-audit's own message, when it produced no report."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.json"
        command = [sys.executable, "-m", "pip_audit", "--no-deps", "--disable-pip", "--progress-spinner", "off"]
        command += [argument for path in requirement_files for argument in ("--requirement", str(path))]
        command += ["--format", "json", "--output", str(report), *pip_audit_arguments]
        # pip-audit exits 1 both for vulnerabilities found and for its own failures: the report tells them apart.
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        try:
            return json.loads(report.read_text())
        except (FileNotFoundError, json.JSONDecodeError) as error:
            raise RuntimeError(
                f"pip-audit produced no report (exit {completed.returncode}): {completed.stderr}"
            ) from error


def findings(report: dict) -> tuple[list[Finding], list[tuple[str, str]]]:
    """The report's vulnerabilities, and the packages it could not audit (each with pip-audit's reason)."""
    found, skipped = [], []
    for dependency in report["dependencies"]:
        if "skip_reason" in dependency:
            skipped.append((dependency["name"], dependency["skip_reason"]))
            continue
        for vulnerability in dependency.get("vulns", []):
            ids = [vulnerability["id"], *vulnerability.get("aliases", [])]
            found.append(Finding(dependency["name"], dependency["version"], ids, vulnerability["fix_versions"]))
    return found, skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument(
        "-r", "--requirement", type=Path, action="append", help="a pinned requirements file (default: the lock files)"
    )
    parser.add_argument(
        "--advisories", type=Path, default=ARCHIVE, help=f"the advisory database's archive (default: {ARCHIVE})"
    )
    parser.add_argument("-s", "--vulnerability-service", choices=("osv", "pypi"), help="pip-audit's own service")
    parser.add_argument("--osv-url", help="with `--vulnerability-service osv`: the OSV query API to ask")
    arguments, pip_audit_arguments = parser.parse_known_args(argv)
    requirement_files = arguments.requirement or list(LOCK_FILES)
    service = []  # the one the caller named, if any
    if arguments.vulnerability_service:
        service += ["--vulnerability-service", arguments.vulnerability_service]
    if arguments.osv_url:
        service += ["--osv-url", arguments.osv_url]
    try:
        if service:
            report = run_pip_audit(requirement_files, [*service, *pip_audit_arguments])
        elif arguments.advisories.is_file():
            advisories = AdvisoryData.load(arguments.advisories)
            print(f"advisory data: {advisories.describe(datetime.now(UTC))}")
            with serving(advisories) as url:
                osv = ["--vulnerability-service", "osv", "--osv-url", url]
                report = run_pip_audit(requirement_files, [*osv, *pip_audit_arguments])
        else:
            print(f"warning: no advisory archive at {arguments.advisories}: asking PyPI's JSON API instead")
            report = run_pip_audit(requirement_files, pip_audit_arguments)
    except (RuntimeError, OSError, ValueError) as error:
        print(f"audit failed: {error}", file=sys.stderr)
        return 2
    found, skipped = findings(report)
    fixable = [finding for finding in found if finding.fixed_in]
    for finding in found:
        print(f"{'VULNERABLE' if finding.fixed_in else 'warning'}: {finding}")
    if skipped:
        names = textwrap.fill(", ".join(name for name, _ in skipped), 116, initial_indent="  ", subsequent_indent="  ")
        print(f"not audited ({len(skipped)} of {len(report['dependencies'])} packages; first reason: {skipped[0][1]}):")
        print(names)
    audited = len(report["dependencies"]) - len(skipped)
    if not audited:
        print("NOTHING AUDITED: the advisory service answered for none of the packages")
    unfixed = len(found) - len(fixable)
    print(f"audited {audited} packages: {len(fixable)} vulnerable with a fixed release, {unfixed} without one")
    return 1 if fixable else 0


if __name__ == "__main__":
    sys.exit(main())
