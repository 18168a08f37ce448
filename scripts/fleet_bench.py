"""The pages of a simulated city fleet on day 1 and day D of its history: server time (the `Server-Timing` header)
p50/p95 and client wall time of the overview, a site page (100 cameras; its figures warmed as the beat does, and
again with nothing cached), a camera page, the 30-day hourly series, `/metrics`, and a report's history of a 50-camera
site (its database part, timed in-process: the LLM's writing is `python -m llm_reports bench`'s); then database bytes
per camera-day and accepted uploads/s with two web processes.

    python scripts/fleet_bench.py [--cameras 1000] [--days 30] [--every 300] [--requests 20] [--upload-seconds 10]

A database of its own on the PostgreSQL at 127.0.0.1:5432 (`crowdscope_fleet_bench`, dropped and made again, and
dropped at the end), Redis databases 8 (broker) and 9 (cache) on 127.0.0.1:6379. `manage.py simulate_fleet` writes a
day of history, the pages are measured, it extends the history to `--days`, they are measured again.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import redis
import requests
from throughput import FRAME, POSTGRES_ADMIN_URL, manage, upload_load
from web_memory import REPO, free_port, wait_for_status

DATABASE = "crowdscope_fleet_bench"
REDIS_BROKER, REDIS_CACHE = "redis://127.0.0.1:6379/8", "redis://127.0.0.1:6379/9"
WEB_WORKERS = 2
STAFF, PASSWORD = "fleet-bench", "fleet-bench-password"
UPLOAD_GATEWAYS = 8
# A staff user, the measured site (the first of 100 cameras) and camera, and gateways for the uploads: printed as JSON.
SEED = f"""
import json
from django.contrib.auth import get_user_model
from django.db.models import Count
from webapp.accounts.roles import Role, assign_role
from webapp.cameras.models import Camera, Gateway, Site
user = get_user_model().objects.create_user({STAFF!r}, password={PASSWORD!r}, is_staff=True)
assign_role(user, Role.ADMIN)
site = Site.objects.annotate(n=Count("cameras")).order_by("-n", "pk").first()
cameras = list(site.cameras.order_by("pk"))
tokens = []
for index, camera in enumerate(cameras[:{UPLOAD_GATEWAYS}]):
    gateway = Gateway(name=f"fleet-bench-{{index}}")
    tokens.append((camera.pk, gateway.issue_secret()))
    gateway.save()
    gateway.cameras.set([camera])
print(json.dumps({{"site": site.pk, "site_cameras": len(cameras), "camera": cameras[0].pk, "uploads": tokens}}))
"""
# The report of a site's first 50 cameras for yesterday on its clock, its history built as a report's is: timed and
# its queries counted in the process, as the reports worker runs it.
REPORT = """
import json, statistics, time
from datetime import timedelta
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from webapp.cameras.models import Site
from webapp.reports.history import build_history, day_period
site = Site.objects.get(pk={site})
cameras = list(site.cameras.order_by("pk")[:50])
start, end = day_period(timezone.localdate(timezone=site.zone) - timedelta(days=1), site.time_zone)
times = []
for _ in range({requests}):
    began = time.perf_counter()
    with CaptureQueriesContext(connection) as queries:
        history = build_history(cameras, start, end, site.time_zone)
    times.append((time.perf_counter() - began) * 1000)
buckets = sum(len(series.buckets) for series in history.series)
print(json.dumps({{"ms": times, "queries": len(queries), "cameras": len(cameras), "buckets": buckets}}))
"""


@dataclass(frozen=True)
class Timing:
    server_ms: list[float]
    client_ms: list[float]
    bytes: int
    note: str = ""

    def cell(self) -> str:
        server = f"{percentile(self.server_ms, 50):,.0f} / {percentile(self.server_ms, 95):,.0f} ms"
        client = f", client {percentile(self.client_ms, 50):,.0f} ms" if self.client_ms else ""
        size = f", {self.bytes / 1000:,.0f} kB" if self.bytes else ""
        return f"{server}{client}{size}{self.note}"


def percentile(values: list[float], share: int) -> float:
    """The `share`th percentile, by the nearest rank (of 20 requests: p95 is the 19th fastest)."""
    ordered = sorted(values)
    return ordered[max(0, -(-share * len(ordered) // 100) - 1)]


def server_ms(response: requests.Response) -> float:
    """The web process's own time for the request, from its `Server-Timing: app;dur=<ms>` header."""
    for metric in response.headers["Server-Timing"].split(","):
        name, _, duration = metric.strip().partition(";dur=")
        if name == "app":
            return float(duration)
    raise RuntimeError(f"no app time in Server-Timing: {response.headers['Server-Timing']}")


def measure(
    session: requests.Session, url: str, requests_each: int, before_each: Callable[[], object] | None = None
) -> Timing:
    """A request to each web process to warm its caches, then `requests_each`, each after `before_each`; each must
    answer 200."""
    server, client, size = [], [], 0
    for attempt in range(-WEB_WORKERS, requests_each):
        if before_each:
            before_each()
        began = time.perf_counter()
        response = session.get(url, timeout=120)
        wall = (time.perf_counter() - began) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:300]}")
        if attempt >= 0:
            server.append(server_ms(response))
            client.append(wall)
            size = len(response.content)
    return Timing(server, client, size)


def signed_in(url: str) -> requests.Session:
    session = requests.Session()
    session.get(f"{url}/accounts/login/", timeout=30)
    response = session.post(
        f"{url}/accounts/login/",
        data={"username": STAFF, "password": PASSWORD, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{url}/accounts/login/"},
        timeout=30,
    )
    if response.status_code != 200 or "sessionid" not in session.cookies:
        raise RuntimeError(f"signing in failed: {response.status_code}")
    return session


@contextmanager
def web_server(environment: dict[str, str], folder: Path):
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "webapp.wsgi", "--bind", f"127.0.0.1:{port}"]
    command += ["--workers", str(WEB_WORKERS), "--no-control-socket", "--timeout", "300"]
    with (folder / "web.log").open("ab") as log:
        server = subprocess.Popen(command, cwd=REPO, env=environment, stdout=log, stderr=log)
    try:
        url = f"http://127.0.0.1:{port}"
        if wait_for_status(f"{url}/healthz", server) != 200:
            raise RuntimeError(f"the server is not healthy; see {folder / 'web.log'}")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=60)


def measure_pages(environment: dict[str, str], folder: Path, seeded: dict, requests_each: int) -> dict[str, Timing]:
    """Every page of the table, over HTTP against gunicorn, and the report's history in-process. The site pages'
    figures are warmed first, as the beat does a few minutes into each hour; the site page is measured again with
    the cache emptied before each request, as the first request of an hour finds it without the beat."""
    timings = {}
    manage(environment, "warm_site_analytics")
    with web_server(environment, folder) as url:
        session = signed_in(url)
        now = datetime.now(UTC)
        month = {"bucket": "1h", "from": (now - timedelta(days=30)).isoformat(), "to": now.isoformat()}
        pages = {
            "overview": "/",
            f"site page ({seeded['site_cameras']} cameras)": f"/sites/{seeded['site']}/",
            "camera page": f"/cameras/{seeded['camera']}/",
            "30-day hourly series": f"/api/v1/cameras/{seeded['camera']}/counts/?{urlencode(month)}",
            "/metrics": "/metrics",
        }
        for name, path in pages.items():
            timings[name] = measure(session, f"{url}{path}", requests_each)
        timings[f"site page ({seeded['site_cameras']} cameras), nothing cached"] = measure(
            session, f"{url}/sites/{seeded['site']}/", requests_each, redis.Redis.from_url(REDIS_CACHE).flushdb
        )
    report = json.loads(
        manage(environment, "shell", "-c", REPORT.format(site=seeded["site"], requests=requests_each)).splitlines()[-1]
    )
    timings[f"report history ({report['cameras']} cameras)"] = Timing(
        report["ms"], [], 0, f", {report['queries']} queries, {report['buckets']:,} hourly buckets"
    )
    return timings


def simulate(environment: dict[str, str], cameras: int, days: float, every: int) -> dict:
    began = time.monotonic()
    out = manage(
        environment, "simulate_fleet", "--cameras", str(cameras), "--days", str(days), "--every", str(every), "--json"
    )
    figures = json.loads(out.strip().splitlines()[-1])
    print(
        f"simulate_fleet --days {days:g}: {figures['frames']:,} frames in {figures['seconds']:,.0f} s "
        f"({time.monotonic() - began:,.0f} s with start-up); database {figures['database_bytes'] / 1e9:,.2f} GB",
        flush=True,
    )
    return figures


def bench_environment(folder: Path) -> dict[str, str]:
    """Production settings over plain HTTP on loopback, as tests/e2e/stack.py's stacks run them."""
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "fleet-bench",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CROWDSCOPE_SSL_REDIRECT": "false",
        "CROWDSCOPE_SECURE_COOKIES": "false",
        "CROWDSCOPE_HSTS_SECONDS": "0",
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{DATABASE}",
        "REDIS_URL": REDIS_BROKER,
        "CROWDSCOPE_CACHE_URL": REDIS_CACHE,
        "MEDIA_ROOT": str(folder / "media"),
        "STATIC_ROOT": str(folder / "static"),
        "LOG_LEVEL": "WARNING",
    }
    environment.pop("CROWDSCOPE_TASKS_IN_PROCESS", None)
    return environment


def recreate_database() -> None:
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{DATABASE}"')


def drop_database() -> None:
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


def print_table(columns: dict[str, dict[str, Timing]], sizes: dict[str, str], ingest: str) -> None:
    names = list(next(iter(columns.values())))
    heads = list(columns)
    print("\n| server time p50 / p95 (client p50, body) | " + " | ".join(heads) + " |")
    print("|---" * (len(heads) + 1) + "|")
    for name in names:
        print(f"| {name} | " + " | ".join(columns[head][name].cell() for head in heads) + " |")
    print("| database bytes per camera-day | " + " | ".join(sizes[head] for head in heads) + " |")
    print(f"\n{ingest}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", type=int, default=1000)
    parser.add_argument("--days", type=float, default=30, help="of history at the second measurement (the first: 1)")
    parser.add_argument("--every", type=int, default=300, help="seconds between a camera's frames")
    parser.add_argument("--requests", type=int, default=20, help="timed requests of each page")
    parser.add_argument("--upload-seconds", type=float, default=10.0, help="how long the uploads go on")
    parser.add_argument("--upload-clients", type=int, default=16)
    parser.add_argument("--keep", action="store_true", help=f"keep the database {DATABASE} at the end")
    args = parser.parse_args()
    if args.days <= 1:
        parser.error("--days must be more than 1: day 1 is measured first")

    began = time.monotonic()
    recreate_database()
    for url in (REDIS_BROKER, REDIS_CACHE):
        redis.Redis.from_url(url).flushdb()
    try:
        with tempfile.TemporaryDirectory(prefix="crowdscope-fleet-bench-") as name:
            folder = Path(name)
            environment = bench_environment(folder)
            manage(environment, "migrate", "--noinput")
            manage(environment, "collectstatic", "--noinput")
            columns: dict[str, dict[str, Timing]] = {}
            sizes: dict[str, str] = {}
            seeded: dict = {}
            frames = 0
            for days in (1, args.days):
                figures = simulate(environment, args.cameras, days, args.every)
                if not seeded:
                    seeded = json.loads(manage(environment, "shell", "-c", SEED).splitlines()[-1])
                frames += figures["frames"]  # those written by this run: the history is extended
                head = f"day {days:g}: {frames:,} frames"
                columns[head] = measure_pages(environment, folder, seeded, args.requests)
                size = figures["database_bytes"]
                sizes[head] = f"{size / (figures['cameras'] * days) / 1000:,.0f} kB ({size / 1e9:,.2f} GB in all)"
                print(f"{head}: measured", flush=True)
            with web_server(environment, folder) as url:
                load = upload_load(url, seeded["uploads"], FRAME.read_bytes(), args.upload_clients, args.upload_seconds)
            accepted = load["statuses"].get(202, 0)
            ingest = (
                f"ingest: {accepted / load['seconds']:.1f} accepted uploads/s with {WEB_WORKERS} web processes "
                f"({accepted} in {load['seconds']:.1f} s, {args.upload_clients} clients, {len(seeded['uploads'])} "
                f"gateways, counting off; answers {dict(sorted(load['statuses'].items()))})"
            )
            print_table(columns, sizes, ingest)
            print(
                f"\n{args.cameras:,} cameras, a frame every {args.every} s, {WEB_WORKERS} gunicorn workers, "
                f"{args.requests} requests a page; {time.monotonic() - began:,.0f} s in all"
            )
    except RuntimeError as error:
        print(f"fleet bench: {error}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            drop_database()
    return 0


if __name__ == "__main__":
    sys.exit(main())
