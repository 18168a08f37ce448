"""`python manage.py demo`: the whole system on one machine, fed by a simulated gateway, until Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from counting.specs import ARCHITECTURE_NAMES
from webapp.accounts.roles import Role, assign_role
from webapp.cameras.models import Camera, Gateway, Site, Zone
from webapp.queues import CALIBRATE_QUEUE, DEFAULT_QUEUE, REPORTS_QUEUE, count_queue
from webapp.reports.models import Subscription

# One account per role, all with the demo password: try the access rules by signing in as each.
DEMO_USERS = {"admin": Role.ADMIN, "operator": Role.OPERATOR, "viewer": Role.VIEWER}
DEMO_SMTP_PORT = 8025
DEMO_EMAIL_AFTER_MINUTES = 6
GATEWAY = "demo-gateway"
# Street cameras around People's Square, Shanghai (ShanghaiTech Part B was filmed on Shanghai's streets), on the
# site's own clock: pages, series and reports show Shanghai's wall time, whatever the server's zone.
SITE_NAME = "People's Square"
SITE_TIME_ZONE = "Asia/Shanghai"
FLEET = [
    ("East entrance", "Nanjing Road East, by the metro exit", 31.2352, 121.4781),
    ("Pedestrian street", "Nanjing Road, Century Square", 31.2360, 121.4750),
    ("Square north", "People's Square, north lawn", 31.2330, 121.4740),
    ("Bund promenade", "Zhongshan East 1st Road", 31.2400, 121.4900),
]
# A camera counted on its own gateway (privacy mode): its frames never reach the server.
EDGE_CAMERA = ("Metro concourse", "People's Square station, line 2 hall (counted on its gateway)", 31.2335, 121.4760)
EDGE_GATEWAY = "demo-edge-gateway"
EDGE_HEALTH_PORT = 8765
FRAME_WIDTH, FRAME_HEIGHT = 1024, 768


class Command(BaseCommand):
    help = "Set up a demo fleet and run web server, worker, beat and a gateway simulator until interrupted."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", "8000")))
        parser.add_argument(
            "--images",
            type=Path,
            default=Path(
                os.environ.get("IMAGES") or settings.BASE_DIR.parent / "shared/data/shanghaitech/part_B/test/images"
            ),
            help="frames the simulated gateway uploads (default: ShanghaiTech Part B test; or IMAGES=)",
        )
        parser.add_argument("--password", default=os.environ.get("DEMO_PASSWORD", "crowdscope"))
        parser.add_argument("--interval", type=float, default=20.0, help="seconds between live uploads")

    def handle(self, port: int, images: Path, password: str, interval: float, **options) -> None:
        if not images.is_dir():
            raise CommandError(f"no frames at {images}: pass --images or IMAGES= with a folder of jpg/png frames")
        # `kill` or a closing terminal stops the demo as Ctrl-C does: every process it started goes with it.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        call_command("migrate", interactive=False, verbosity=0)
        self._ensure_users(password)
        cameras, token = self._seed_fleet()
        edge_camera, edge_token = self._seed_edge_camera(cameras[0].site)

        environment = os.environ.copy()
        processes: list[tuple[str, subprocess.Popen]] = []
        mailbox = self._start_mail_sink(environment, processes)
        email_at = self._subscribe_operator(cameras)
        in_process = not self._broker_ready(environment, processes)
        if in_process:
            environment["CROWDSCOPE_TASKS_IN_PROCESS"] = "1"
            self.stderr.write("no Redis reachable and no redis-server installed: frames are counted in-process")

        url = f"http://127.0.0.1:{port}"
        python = sys.executable
        web = [python, "-m", "gunicorn", "webapp.wsgi", "--bind", url.removeprefix("http://"), "--workers", "2"]
        processes.append(("web", self._start([*web, "--timeout", "120"], environment)))
        if not in_process:
            counting_queues = ",".join([count_queue(arch) for arch in ARCHITECTURE_NAMES] + [DEFAULT_QUEUE])
            slow_queues = f"{REPORTS_QUEUE},{CALIBRATE_QUEUE}"
            beat_schedule = settings.MEDIA_ROOT / "celerybeat-schedule"
            beat_schedule.parent.mkdir(parents=True, exist_ok=True)
            # Reports and calibrations have a worker of their own, so counting never waits behind the LLM or a tuning.
            processes += [
                ("worker", self._start(_celery("worker", "-Q", counting_queues, "-n", "counting@%h"), environment)),
                (
                    "reports worker",
                    self._start(_celery("worker", "-Q", slow_queues, "-n", "reports@%h"), environment),
                ),
                ("beat", self._start(_celery("beat", "--schedule", str(beat_schedule)), environment)),
            ]
        try:
            self._wait_for_web(url, processes)
            simulator = [python, "-m", "webapp.demo.simulator", str(images), "--url", url, "--token", token]
            simulator += ["--interval", str(interval)]
            simulator += [arg for camera in cameras for arg in ("--camera", str(camera.pk))]
            # The edge camera's frames land in a folder on "its gateway", as a camera's FTP upload would.
            edge_folder = settings.MEDIA_ROOT / "demo-edge" / "camera"
            edge_folder.mkdir(parents=True, exist_ok=True)
            simulator += ["--edge-folder", str(edge_folder)]
            processes.append(("simulator", self._start(simulator, environment)))
            agent = [python, "-m", "edge", "--server", url, "--camera", str(edge_camera.pk)]
            agent += ["--folder", str(edge_folder), "--interval", "2", "--threads", "1"]
            agent += ["--state-dir", str(edge_folder.parent / "state"), "--health-port", str(EDGE_HEALTH_PORT)]
            processes.append(
                ("gateway agent", self._start(agent, environment | {"CROWDSCOPE_GATEWAY_TOKEN": edge_token}))
            )
            self._banner(url, password, token, cameras[0])
            self.stdout.write(
                f"The operator's daily report email goes out at {email_at:%H:%M} ({SITE_TIME_ZONE}) through the"
                f" beat; it lands in {mailbox}/new (a local SMTP sink on {environment['EMAIL_HOST']}"
                f":{environment['EMAIL_PORT']})."
            )
            self._supervise(processes)
        finally:
            self._stop(processes)

    def _start_mail_sink(self, environment: dict[str, str], processes: list) -> Path:
        """A local SMTP server that keeps every message in a maildir, unless EMAIL_HOST names a real one."""
        mailbox = Path(settings.MEDIA_ROOT) / "demo-mail"
        if "EMAIL_HOST" in os.environ:
            return mailbox
        mailbox.parent.mkdir(parents=True, exist_ok=True)
        environment.update(EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(DEMO_SMTP_PORT))
        sink = [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{DEMO_SMTP_PORT}"]
        processes.append(
            ("mail sink", self._start([*sink, "-c", "aiosmtpd.handlers.Mailbox", str(mailbox)], environment))
        )
        return mailbox

    def _subscribe_operator(self, cameras: list[Camera]) -> datetime:
        """The operator subscribes to the fleet's daily report, due a few minutes from now (once the back-fill has
        counted yesterday), so the demo shows the beat sending it."""
        user = get_user_model().objects.get(username="operator")
        user.email = user.email or "operator@crowdscope.local"
        user.save(update_fields=["email"])
        # The operator works at the site: the report is due at a time of the site's clock.
        send_at = timezone.localtime(timezone=ZoneInfo(SITE_TIME_ZONE)) + timedelta(minutes=DEMO_EMAIL_AFTER_MINUTES)
        subscription, _ = Subscription.objects.update_or_create(
            user=user, defaults={"send_at": send_at.time(), "timezone": SITE_TIME_ZONE, "active": True}
        )
        subscription.cameras.set(cameras)
        return send_at

    def _ensure_users(self, password: str) -> None:
        for username, role in DEMO_USERS.items():
            user, _ = get_user_model().objects.get_or_create(username=username)
            user.is_superuser = False
            user.set_password(password)
            user.save()
            assign_role(user, role)

    @transaction.atomic
    def _seed_fleet(self) -> tuple[list[Camera], str]:
        # A demo database from before the site had its zone is put right on the next run.
        site, _ = Site.objects.update_or_create(name=SITE_NAME, defaults={"time_zone": SITE_TIME_ZONE})
        cameras = []
        for name, place, latitude, longitude in FLEET:
            camera, _ = Camera.objects.get_or_create(
                site=site,
                name=name,
                defaults={"place": place, "latitude": latitude, "longitude": longitude, "alert_threshold": 150},
            )
            Zone.objects.get_or_create(
                camera=camera,
                name="Far side",
                defaults={"polygon": [[0, 0], [FRAME_WIDTH, 0], [FRAME_WIDTH, 384], [0, 384]]},
            )
            Zone.objects.get_or_create(
                camera=camera,
                name="Near side",
                defaults={
                    "polygon": [[0, 384], [FRAME_WIDTH, 384], [FRAME_WIDTH, FRAME_HEIGHT], [0, FRAME_HEIGHT]],
                    # The pavement in front of the camera, about 12 m by 5 m; crowded above one person per m².
                    "area_m2": 60.0,
                    "density_threshold": 1.0,
                },
            )
            cameras.append(camera)
        return cameras, self._gateway_token(GATEWAY, cameras)

    def _broker_ready(self, environment: dict[str, str], processes: list) -> bool:
        """Redis at the configured URL, or one we start on 127.0.0.1:6379 when redis-server is installed."""
        url = settings.CELERY_BROKER_URL
        if _redis_answers(url):
            return True
        if shutil.which("redis-server") is None:
            return False
        self.stderr.write("starting redis-server on 127.0.0.1:6379")
        server = self._start(
            ["redis-server", "--bind", "127.0.0.1", "--port", "6379", "--save", "", "--appendonly", "no"], environment
        )
        processes.append(("redis", server))
        environment["REDIS_URL"] = "redis://127.0.0.1:6379/0"
        for _ in range(50):
            if _redis_answers(environment["REDIS_URL"]):
                return True
            time.sleep(0.2)
        raise CommandError("redis-server started but does not answer on 127.0.0.1:6379")

    def _start(self, command: list[str], environment: dict[str, str]) -> subprocess.Popen:
        return subprocess.Popen(command, env=environment, cwd=settings.BASE_DIR)

    def _wait_for_web(self, url: str, processes: list[tuple[str, subprocess.Popen]]) -> None:
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"{url}/accounts/login/", timeout=2):
                    return
            except OSError:
                self._check_alive(processes)
                time.sleep(0.5)
        raise CommandError(f"the web server did not answer at {url}")

    def _banner(self, url: str, password: str, token: str, camera: Camera) -> None:
        self.stdout.write(
            self.style.SUCCESS(f"\nCrowdScope demo running. Dashboard: {url}/  (login operator / {password})")
        )
        self.stdout.write(f"Other roles, same password: {', '.join(name for name in DEMO_USERS if name != 'operator')}")
        self.stdout.write(
            f"Gateway token ({GATEWAY}): {token}\n"
            f"Upload a frame:  curl -H 'Authorization: Token {token}' -F camera={camera.pk} -F image=@FRAME.jpg "
            f"{url}/api/v1/frames/\n"
            f"The {EDGE_CAMERA[0]} camera is counted on its gateway (python -m edge, privacy mode);"
            f" its health: http://127.0.0.1:{EDGE_HEALTH_PORT}/health\n"
            f"API schema: {url}/api/schema/   Stop with Ctrl-C.\n"
        )

    def _seed_edge_camera(self, site: Site) -> tuple[Camera, str]:
        name, place, latitude, longitude = EDGE_CAMERA
        camera, _ = Camera.objects.get_or_create(
            site=site,
            name=name,
            defaults={
                "place": place,
                "latitude": latitude,
                "longitude": longitude,
                "alert_threshold": 150,
                "counting_model": "skynet-count",
            },
        )
        return camera, self._gateway_token(EDGE_GATEWAY, [camera])

    def _gateway_token(self, name: str, cameras: list[Camera]) -> str:
        """The gateway `name`, owning `cameras`, with a fresh token each run: the old one is never shown again."""
        gateway = Gateway.objects.filter(name=name).first() or Gateway(name=name)
        token = gateway.issue_secret()
        gateway.save()
        gateway.cameras.set(cameras)
        return token

    def _check_alive(self, processes: list[tuple[str, subprocess.Popen]]) -> None:
        for name, process in processes:
            if process.poll() is not None:
                raise CommandError(f"the {name} process stopped (exit code {process.returncode})")

    def _supervise(self, processes: list[tuple[str, subprocess.Popen]]) -> None:
        try:
            while True:
                self._check_alive(processes)
                time.sleep(1)
        except KeyboardInterrupt:
            self.stdout.write("stopping the demo")

    def _stop(self, processes: list[tuple[str, subprocess.Popen]]) -> None:
        for _, process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _, process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def _celery(command: str, *args: str) -> list[str]:
    concurrency = ["-c", "1"] if command == "worker" else []
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.celery_app",
        command,
        *concurrency,
        *args,
        "--loglevel",
        "INFO",
    ]


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False
