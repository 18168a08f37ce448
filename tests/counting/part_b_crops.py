"""Labelled folders for short training and calibration runs: the middle of Part B training frames, cut rather than
shrunk, so heads keep their size and the density per cell is Part B's (the scale the training recipe is set for)."""

import json
from pathlib import Path

import cv2
import numpy as np

from counting.training.datasets import shanghaitech_split

CROP_WIDTH, CROP_HEIGHT = 256, 192


def write_part_b_crops(shanghaitech: Path, folder: Path, frames: int) -> Path:
    """The middle 256x192 of the first `frames` Part B training frames in `folder`, each beside NAME.json."""
    folder.mkdir(parents=True, exist_ok=True)
    top, left = (768 - CROP_HEIGHT) // 2, (1024 - CROP_WIDTH) // 2
    for sample in shanghaitech_split(shanghaitech / "part_B", "train")[:frames]:
        image = cv2.imread(str(sample.image_path))
        cv2.imwrite(str(folder / sample.image_path.name), image[top : top + CROP_HEIGHT, left : left + CROP_WIDTH])
        points = sample.points - np.array([left, top])
        inside = (points >= 0).all(axis=1) & (points[:, 0] < CROP_WIDTH) & (points[:, 1] < CROP_HEIGHT)
        (folder / f"{sample.image_path.stem}.json").write_text(json.dumps(points[inside].tolist()))
    return folder
