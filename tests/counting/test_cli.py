"""`python -m counting count` and `evaluate` with our default weights on real ShanghaiTech frames."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from counting.cli import main
from tests import REPO


@pytest.fixture(scope="module")
def part_b(shanghaitech):
    return shanghaitech / "part_B"


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_count_prints_one_json_object_a_line_and_writes_overlays(part_b, tmp_path, capsys):
    images = [str(part_b / "test/images" / name) for name in ("IMG_1.jpg", "IMG_2.jpg")]
    assert main(["count", *images, "--json", "--overlay", str(tmp_path)]) == 0
    records = _json_lines(capsys.readouterr().out)
    assert [r["path"] for r in records] == images
    for record in records:
        assert set(record) >= {"path", "count", "arch", "weights", "ms"}
        assert record["arch"] == "csrnet-lite" and record["weights"].endswith("csrnet-lite-mix3.pt")
        assert 0 < record["count"] < 1000
        with Image.open(record["overlay"]) as overlay:
            assert overlay.size == (1024, 768)


def test_evaluate_agrees_with_count(part_b, tmp_path, capsys):
    per_image = tmp_path / "per-image.csv"
    assert (
        main(["evaluate", "--data", str(part_b), "--split", "test", "--limit", "3", "--json", "--csv", str(per_image)])
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 3
    for key in ("mae", "mse", "game0", "game1", "game2", "game3"):
        assert np.isfinite(summary[key]), key
    assert summary["game0"] == pytest.approx(summary["mae"])
    assert summary["game0"] <= summary["game1"] <= summary["game2"] <= summary["game3"]
    rows = list(csv.DictReader(per_image.open()))
    assert main(["count", "--json", *[str(part_b / "test/images" / row["image"]) for row in rows]]) == 0
    counted = _json_lines(capsys.readouterr().out)
    for row, record in zip(rows, counted, strict=True):
        assert float(row["predicted"]) == pytest.approx(record["count"], abs=1e-3)


def test_bad_inputs_get_clear_errors(part_b, tmp_path, capsys):
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("hello")
    assert main(["count", str(not_an_image), str(part_b / "test/images/IMG_3.jpg"), "--json"]) == 1
    captured = capsys.readouterr()
    assert "cannot read" in captured.err and "notes.jpg" in captured.err
    assert len(_json_lines(captured.out)) == 1  # the good frame is still counted
    assert main(["count", "--weights", str(tmp_path / "absent.pt"), str(not_an_image)]) == 2
    assert "no weights file" in capsys.readouterr().err
    assert main(["count", "--arch", "csrnet", str(not_an_image)]) == 2
    assert "no trained weights for 'csrnet'" in capsys.readouterr().err


def test_the_module_runs_as_a_program(part_b):
    result = subprocess.run(
        [sys.executable, "-m", "counting", "count", str(part_b / "test/images/IMG_4.jpg")],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "IMG_4.jpg:" in result.stdout and "people" in result.stdout
