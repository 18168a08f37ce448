"""The web process's resident memory: start gunicorn on the project's WSGI app as production does (one worker, on a
free loopback port, a throw-away SQLite database), load the login page once so that the URL configuration and every
view module are imported, and print the worker's VmRSS (the worker's, not the master's: the worker serves requests).

    python scripts/web_memory.py [--max-mib 150]

Exits 1 when the login page does not answer 200, or when the memory is over --max-mib.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOGIN_PATH = "/accounts/login/"
START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc: Linux only)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended while we looked
            continue
        # The command name, in parentheses, may hold spaces: the fields after its closing parenthesis are fixed.
        parent = int(stat.rpartition(")")[2].split()[1])
        if parent == pid:
            found.append(int(entry.name))
    return found


def resident_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"process {pid} reports no VmRSS")


def get(url: str) -> int:
    """The status of GET `url`; raises OSError while nothing listens there."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def wait_for_status(url: str, server: subprocess.Popen) -> int:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {server.returncode} before answering")
        try:
            return get(url)
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"gunicorn did not answer {url} within {START_TIMEOUT_S} s")


def measure() -> int:
    """Start the web server, load the login page once and return its worker's resident memory in KiB."""
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        environment = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "webapp.settings",
            # Static files from the finders, without a collectstatic run, as every figure of this script was taken.
            "DJANGO_DEBUG": "true",
            "DATABASE_URL": f"sqlite:///{folder}/web-memory.sqlite3",
            "MEDIA_ROOT": f"{folder}/media",
        }
        # No control socket: its default path is shared with any other gunicorn of this user.
        command = [sys.executable, "-m", "gunicorn", "webapp.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"]
        log = Path(folder) / "gunicorn.log"
        with log.open("w") as log_file:
            server = subprocess.Popen(
                [*command, "--no-control-socket"], cwd=REPO, env=environment, stdout=log_file, stderr=log_file
            )
            try:
                status = wait_for_status(f"http://127.0.0.1:{port}{LOGIN_PATH}", server)
                if status != 200:
                    raise RuntimeError(f"GET {LOGIN_PATH} answered {status}")
                workers = children(server.pid)
                if len(workers) != 1:
                    raise RuntimeError(f"expected one gunicorn worker, found processes {workers}")
                return resident_kib(workers[0])
            except RuntimeError as error:
                raise RuntimeError(f"{error}; gunicorn's log:\n{log.read_text()}") from error
            finally:
                server.terminate()
                server.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-mib", type=float, help="fail when the worker holds more than this")
    args = parser.parse_args()
    try:
        kib = measure()
    except RuntimeError as error:
        print(f"web memory: {error}", file=sys.stderr)
        return 1
    mib = kib / 1024
    print(f"web worker resident memory after GET {LOGIN_PATH}: {mib:.0f} MiB ({kib} KiB VmRSS)")
    if args.max_mib is not None and mib > args.max_mib:
        print(f"web memory: over the {args.max_mib:g} MiB limit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
