"""What a running server answers to hostile uploads, and how long it takes: gunicorn on loopback with PostgreSQL and
Redis (as `scripts/throughput.py` deploys it, one web process), each file sent once by a gateway of the camera.

    python scripts/hostile_inputs.py

Exits 1 when any of them is answered with a 5xx or not refused.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests
from PIL import Image
from throughput import FRAME, bench_stack

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.hostile_files import inflating_npz, text_bomb_png

Send = Callable[[str, int, str], requests.Response]


def sender(path: str, fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> Send:
    """A gateway's POST of `fields` and `files` to the API's `path`."""

    def send(url: str, camera: int, token: str) -> requests.Response:
        return requests.post(
            f"{url}/api/v1/{path}",
            data={"camera": camera, **fields},
            files=files,
            headers={"Authorization": f"Token {token}"},
            timeout=120,
        )

    return send


def upload(image: bytes, **fields: str) -> Send:
    return sender("frames/", fields, {"image": ("frame", image)})


def edge_result(density: bytes) -> Send:
    fields = {"captured_at": "2026-12-04T10:00:00Z", "count": "0", "width": "1024", "height": "768"}
    fields |= {"model": "skynet-count", "model_version": "bench", "inference_ms": "10"}
    return sender("edge-results/", fields, {"density": ("density.npz", density)})


def pixel_bomb_png() -> bytes:
    """A 1-bit PNG of 30000 x 30000 pixels in about 100 KB."""
    buffer = io.BytesIO()
    Image.new("1", (30_000, 30_000)).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def main() -> int:
    frame = FRAME.read_bytes()
    cases = {
        "PNG, 3 KB, zTXt inflating past Pillow's text limit": upload(text_bomb_png()),
        "PNG, 30000x30000 pixels in 100 KB": upload(pixel_bomb_png()),
        "JPEG cut to half its bytes": upload(frame[: len(frame) // 2]),
        "not an image (a text file)": upload(b"hello, I am not a JPEG\n" * 100),
        "captured_at 2099-01-01": upload(frame, captured_at="2099-01-01T00:00:00Z"),
        "upload of 30 MB (over the 20 MB limit)": upload(frame + bytes(30 * 2**20)),
        "edge result: .npz inflating to 20000x20000 float16": edge_result(inflating_npz((20_000, 20_000))),
    }
    failures = 0
    # One web process, warmed by a real upload first: each time is the answer's own, not a first request's imports.
    with bench_stack(web_workers=1) as stack:
        camera, token = stack.cameras[0]
        upload(frame)(stack.url, camera, token).raise_for_status()
        print("| input | answer | seconds | message |\n|---|---|---|---|")
        for name, send in cases.items():
            started = time.perf_counter()
            response = send(stack.url, camera, token)
            seconds = time.perf_counter() - started
            message = response.text[:110].replace("|", "/").replace("\n", " ")
            print(f"| {name} | {response.status_code} | {seconds:.3f} | {message} |")
            failures += not 400 <= response.status_code < 500
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
