"""Importers: head annotations in public formats (Pascal VOC head boxes, `.mat` point files) into point folders.

A point folder is what `counting.training.datasets.point_folder` reads and an operator labels by hand: each image beside
`NAME.json` with its head points (`{"points": [[x, y], ...]}`, continuous pixel coordinates). Every importer writes
that layout, one folder a split (`OUT/train/`, `OUT/test/`), so training, evaluation and calibration read every data
set through one loader. The images are copied, never modified.

Two public sets come with a reader for their whole layout:
- SCUT-HEAD (`JPEGImages/PartA_*.jpg`, `PartB_*.jpg` with `Annotations/NAME.xml`): its public copy has no split file,
  so `scut_head_split` fixes one (see there). Part A (classroom CCTV) and Part B (web photos) become two data sets.
- Beijing-BRT (`train/frame/*.jpg` with `train/ground_truth/*.mat`, variable `loc`; the same under `test/`).

One fixed-camera sequence comes with a reader too, for use as a camera no model trained on (one folder, no split):
- Mall (CUHK; `frames/seq_000001.jpg`... with one `mall_gt.mat` for the whole sequence, `frame{i}.loc` N x 2).
"""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
from PIL import Image

from counting.images import IMAGE_SUFFIXES, upright_size

SCUT_HEAD_PARTS = ("A", "B")
# SCUT-HEAD's frames are numbered in capture order, so neighbours are near-duplicates of one scene: the split takes
# whole blocks of consecutive numbers, a quarter of the blocks for test, so no test frame has its twin in training.
SCUT_HEAD_BLOCK = 20
SCUT_HEAD_TEST_EVERY = 4
# Mall's frame i (1-based, in capture order) is `frames/seq_{i:06d}.jpg` and cell i of `frame` in `mall_gt.mat`.
MALL_FRAME_NAME = "seq_{:06d}.jpg"


class AnnotationFormatError(ValueError):
    """An annotation file that cannot be read as its format says; the message names the file."""


@dataclass(frozen=True)
class ImportSummary:
    """What one split's import wrote into `folder`: images, heads, and the heads left out (outside the image)."""

    folder: str
    images: int
    heads: int
    dropped: int


def voc_head_points(xml_path: str | Path, labels: Iterable[str] = ("head",)) -> np.ndarray:
    """The centres of a Pascal VOC file's boxes named one of `labels`, as (x, y) continuous pixel coordinates.

    VOC corners are 1-based pixel indices, so a box covers [xmin - 1, xmax] in continuous coordinates and its centre
    is at (xmin - 1 + xmax) / 2. The file's own image size is not used (some files give 0); callers check the points
    against the image itself.
    """
    wanted = {label.lower() for label in labels}
    try:
        root = ET.parse(xml_path).getroot()
        points = []
        for obj in root.iter("object"):
            if (obj.findtext("name") or "").strip().lower() not in wanted:
                continue
            box = obj.find("bndbox")
            if box is None:
                raise ValueError("an object has no <bndbox>")
            xmin, ymin, xmax, ymax = (float(box.findtext(side) or "nan") for side in ("xmin", "ymin", "xmax", "ymax"))
            if not np.isfinite([xmin, ymin, xmax, ymax]).all() or xmax < xmin or ymax < ymin:
                raise ValueError(f"box ({xmin}, {ymin}, {xmax}, {ymax}) is not a box")
            points.append(((xmin - 1 + xmax) / 2, (ymin - 1 + ymax) / 2))
    except (ET.ParseError, ValueError) as error:
        raise AnnotationFormatError(f"{xml_path}: not a Pascal VOC annotation ({error})") from error
    return np.asarray(points, dtype=np.float64).reshape(-1, 2)


def _mat_variable(mat_path: str | Path, variable: str) -> Any:
    """The variable `variable` of a MATLAB `.mat` file; AnnotationFormatError naming what is wrong otherwise."""
    try:
        data = scipy.io.loadmat(mat_path)
    except (OSError, ValueError, TypeError, scipy.io.matlab.MatReadError) as error:
        raise AnnotationFormatError(f"{mat_path}: not a MATLAB .mat file ({error})") from error
    if variable not in data:
        found = ", ".join(name for name in data if not name.startswith("__")) or "none"
        raise AnnotationFormatError(f"{mat_path}: no variable {variable!r} (found: {found})")
    return data[variable]


def mat_points(mat_path: str | Path, variable: str = "loc") -> np.ndarray:
    """An N x 2 array of (x, y) head points stored as `variable` in a MATLAB `.mat` file (Beijing-BRT's `loc`).

    Coordinates are taken as continuous pixel coordinates, as they are for ShanghaiTech's `.mat` files.
    """
    points = np.asarray(_mat_variable(mat_path, variable), dtype=np.float64)
    if points.size == 0:
        return points.reshape(0, 2)
    if points.ndim != 2 or points.shape[1] != 2:
        raise AnnotationFormatError(f"{mat_path}: {variable!r} is {points.shape}, not N x 2 points")
    return points


def write_split(pairs: Iterable[tuple[Path, np.ndarray]], out_dir: str | Path) -> ImportSummary:
    """Copy each image into `out_dir` beside `NAME.json` with its points; points outside the image are dropped.

    Written image by image (the JSON last, so an interrupted import leaves no image with a half-written annotation
    that reads as valid); running it again over the same folder rewrites the same files.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = heads = dropped = 0
    for image_path, points in pairs:
        width, height = upright_size(image_path)
        inside = (points[:, 0] >= 0) & (points[:, 0] <= width) & (points[:, 1] >= 0) & (points[:, 1] <= height)
        kept = points[inside]
        shutil.copyfile(image_path, out_dir / image_path.name)
        annotation = out_dir / f"{image_path.stem}.json"
        temporary = annotation.with_suffix(".json.tmp")
        temporary.write_text(json.dumps({"points": np.round(kept, 2).tolist()}))
        temporary.replace(annotation)
        images += 1
        heads += len(kept)
        dropped += int((~inside).sum())
    return ImportSummary(str(out_dir), images, heads, dropped)


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _annotation_for(image: Path, folder: Path, suffix: str) -> Path:
    path = folder / f"{image.stem}{suffix}"
    if not path.exists():
        raise FileNotFoundError(f"{image.name} has no annotation {path}")
    return path


def import_voc(
    images: str | Path, annotations: str | Path, out_dir: str | Path, labels: Iterable[str] = ("head",)
) -> ImportSummary:
    """A folder of images with Pascal VOC head boxes (`annotations/NAME.xml`) into the point folder `out_dir`."""
    images, annotations, labels = Path(images), Path(annotations), tuple(labels)
    found = _images_in(images)
    if not found:
        raise FileNotFoundError(f"no images in {images}")
    pairs = ((image, voc_head_points(_annotation_for(image, annotations, ".xml"), labels)) for image in found)
    return write_split(pairs, out_dir)


def import_mat(images: str | Path, truth: str | Path, out_dir: str | Path, variable: str = "loc") -> ImportSummary:
    """A folder of images with `.mat` point files of the same name (`truth/NAME.mat`) into the point folder."""
    images, truth = Path(images), Path(truth)
    found = _images_in(images)
    if not found:
        raise FileNotFoundError(f"no images in {images}")
    pairs = ((image, mat_points(_annotation_for(image, truth, ".mat"), variable)) for image in found)
    return write_split(pairs, out_dir)


def scut_head_split(image: Path) -> str:
    """ "train" or "test" for a SCUT-HEAD image (`PartA_00123.jpg`): blocks of 20 consecutive numbers, every fourth
    block (numbers 60-79, 140-159, ...) for test, a quarter of each part in all."""
    match = re.fullmatch(r"Part[AB]_(\d+)", image.stem)
    if match is None:
        raise ValueError(f"{image.name} is not named like SCUT-HEAD's PartA_00000.jpg")
    block = int(match.group(1)) // SCUT_HEAD_BLOCK
    return "test" if block % SCUT_HEAD_TEST_EVERY == SCUT_HEAD_TEST_EVERY - 1 else "train"


def import_scut_head(source: str | Path, out: str | Path) -> list[ImportSummary]:
    """SCUT-HEAD (`source/JPEGImages`, `source/Annotations`) into `out/scut-head-a/{train,test}` and
    `out/scut-head-b/{train,test}`, split by `scut_head_split`."""
    source, out = Path(source), Path(out)
    images = _images_in(source / "JPEGImages")
    summaries = []
    for part in SCUT_HEAD_PARTS:
        part_images = [image for image in images if image.stem.startswith(f"Part{part}_")]
        if not part_images:
            raise FileNotFoundError(f"no Part{part}_*.jpg images in {source / 'JPEGImages'}")
        for split in ("train", "test"):
            chosen = [image for image in part_images if scut_head_split(image) == split]
            boxes = ((image, _annotation_for(image, source / "Annotations", ".xml")) for image in chosen)
            pairs = ((image, voc_head_points(xml)) for image, xml in boxes)
            summaries.append(write_split(pairs, out / f"scut-head-{part.lower()}" / split))
    return summaries


def import_beijing_brt(source: str | Path, out: str | Path) -> list[ImportSummary]:
    """Beijing-BRT (`source/{train,test}/frame/*.jpg` with `ground_truth/*.mat`) into `out/beijing-brt/{train,test}`,
    keeping the set's own split."""
    source, out = Path(source), Path(out)
    return [
        import_mat(source / split / "frame", source / split / "ground_truth", out / "beijing-brt" / split)
        for split in ("train", "test")
    ]


def mat_frame_points(mat_path: str | Path, cells: str = "frame", field: str = "loc") -> list[np.ndarray]:
    """Each frame's (x, y) head points from one `.mat` file for a whole sequence (Mall's `mall_gt.mat`): a cell
    array `cells` whose i-th struct holds frame i's N x 2 points in `field`, in frame order.

    Coordinates are taken as continuous pixel coordinates as they are, as for ShanghaiTech's `.mat` files.
    """
    frames = []
    for index, cell in enumerate(np.asarray(_mat_variable(mat_path, cells)).ravel(), start=1):
        names = getattr(getattr(cell, "dtype", None), "names", None) or ()
        if field not in names:
            raise AnnotationFormatError(f"{mat_path}: {cells}{{{index}}} has no field {field!r}")
        points = np.asarray(cell[field].item(), dtype=np.float64)
        if points.size and (points.ndim != 2 or points.shape[1] != 2):
            raise AnnotationFormatError(f"{mat_path}: {cells}{{{index}}}.{field} is {points.shape}, not N x 2 points")
        frames.append(points.reshape(-1, 2))
    return frames


def region_of_interest_path(out_dir: str | Path) -> Path:
    """Where `import_mall` writes the set's region of interest: beside the point folder, not in it."""
    out_dir = Path(out_dir)
    return out_dir.with_name(f"{out_dir.name}-roi.png")


def import_mall(source: str | Path, out_dir: str | Path) -> ImportSummary:
    """The Mall data set (`source/frames/seq_000001.jpg`... with `source/mall_gt.mat`) into the point folder
    `out_dir`: one fixed camera, every frame, its name (the frame number, in capture order) kept.

    Mall marks heads inside a region of interest only (90% of the frame; `perspective_roi.mat`, `roi.mask`): when
    the source has it, it is written as a white-on-black PNG at `region_of_interest_path(out_dir)`, so that counts
    can be compared inside it.
    """
    source = Path(source)
    frames = mat_frame_points(source / "mall_gt.mat")
    images = [source / "frames" / MALL_FRAME_NAME.format(number) for number in range(1, len(frames) + 1)]
    missing = [image.name for image in images if not image.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} frames of mall_gt.mat are not in {source / 'frames'}: {missing[0]}...")
    summary = write_split(zip(images, frames, strict=True), out_dir)
    roi = source / "perspective_roi.mat"
    if roi.is_file():
        try:
            mask = np.asarray(scipy.io.loadmat(roi)["roi"]["mask"].item()) > 0
        except (KeyError, ValueError, OSError, scipy.io.matlab.MatReadError) as error:
            raise AnnotationFormatError(f"{roi}: no region of interest `roi.mask` ({error})") from error
        Image.fromarray((mask * 255).astype(np.uint8)).save(region_of_interest_path(out_dir))
    return summary
