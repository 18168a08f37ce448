"""A gateway simulator: uploads real frames through the REST API, as a site's CCTV gateway would.

It first back-fills the last two days (one frame per camera every half hour, with past `captured_at` times), so the
dashboard has a history to draw and a report has a day before to compare with, then uploads a live frame per camera
every `--interval` seconds. Each upload has
an Idempotency-Key, and a failed upload is retried with the same key.

    python -m webapp.demo.simulator --url http://127.0.0.1:8000 --token TOKEN --camera 1 --camera 2 IMAGES_DIR
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

DEMO_FRAME_SUFFIXES = {".jpg", ".jpeg", ".png"}


def upload(session: requests.Session, url: str, camera: int, image: Path, captured_at: datetime) -> dict:
    key = str(uuid.uuid4())
    for attempt in range(5):
        try:
            with image.open("rb") as handle:
                response = session.post(
                    f"{url}/api/v1/frames/",
                    data={"camera": camera, "captured_at": captured_at.isoformat()},
                    files={"image": (image.name, handle)},
                    headers={"Idempotency-Key": key},
                    timeout=30,
                )
            if response.status_code < 500:
                response.raise_for_status()
                return response.json()
        except requests.ConnectionError:
            pass
        time.sleep(2**attempt)
    raise RuntimeError(f"could not upload {image} for camera {camera}")


def drop_frame(folder: Path, image: Path, captured_at: datetime) -> None:
    """Write a frame into a camera folder as a camera's FTP upload would, with the capture time as the file's time;
    it appears under its final name only when whole."""
    target = folder / f"frame-{captured_at:%Y%m%dT%H%M%S}.jpg"
    partial = target.with_suffix(".part")
    shutil.copyfile(image, partial)
    os.utime(partial, (captured_at.timestamp(), captured_at.timestamp()))
    partial.replace(target)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", type=Path, help="a folder of frames (jpg, png)")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", required=True)
    parser.add_argument("--camera", type=int, action="append", required=True)
    parser.add_argument("--interval", type=float, default=20.0, help="seconds between live rounds of uploads")
    parser.add_argument("--backfill-hours", type=float, default=48.0)
    parser.add_argument("--backfill-step-minutes", type=float, default=30.0)
    parser.add_argument("--edge-folder", type=Path, help="also write frames here, for a gateway agent to count")
    args = parser.parse_args(argv)

    frames = sorted(path for path in args.images.iterdir() if path.suffix.lower() in DEMO_FRAME_SUFFIXES)
    if not frames:
        parser.error(f"no jpg or png frames in {args.images}")
    session = requests.Session()
    session.headers["Authorization"] = f"Token {args.token}"
    # Each camera walks its own slice of the folder, so cameras show different scenes.
    streams = {camera: itertools.cycle(frames[index :: len(args.camera)]) for index, camera in enumerate(args.camera)}
    edge_stream = itertools.cycle(frames[::-1])
    now = datetime.now(UTC)
    step = timedelta(minutes=args.backfill_step_minutes)
    moment = now - timedelta(hours=args.backfill_hours)
    while moment < now:
        for camera, stream in streams.items():
            upload(session, args.url, camera, next(stream), moment)
        if args.edge_folder:
            drop_frame(args.edge_folder, next(edge_stream), moment)
        moment += step
    print(f"simulator: back-filled {args.backfill_hours:g} hours for {len(streams)} cameras", flush=True)
    while True:
        for camera, stream in streams.items():
            upload(session, args.url, camera, next(stream), datetime.now(UTC))
        if args.edge_folder:
            drop_frame(args.edge_folder, next(edge_stream), datetime.now(UTC))
        time.sleep(args.interval)


if __name__ == "__main__":
    main()
