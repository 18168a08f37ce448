"""Annotated crowd images: ShanghaiTech, an operator's own labelled folder, the ground-truth cache, augmentation."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

import numpy as np
import scipy.io
import torch
from torch.utils.data import Dataset

from counting.images import IMAGE_SUFFIXES, IMAGENET_MEAN, load_rgb, to_input_tensor, upright_size, working_scale
from counting.specs import OUTPUT_STRIDE
from counting.training.ground_truth import (
    DEFAULT_SIGMA,
    GEOMETRY_BETA,
    GEOMETRY_NEIGHBOURS,
    density_map,
    fixed_sigmas,
    geometry_adaptive_sigmas,
)

SIGMA_MODES = ("adaptive", "fixed")


@dataclass(frozen=True)
class AnnotatedImage:
    """One image and its head points, (x, y) in continuous pixel coordinates (pixel centres at .5)."""

    image_path: Path
    points: np.ndarray
    sigma_mode: str = "adaptive"

    @property
    def count(self) -> int:
        return len(self.points)


def default_cache_dir() -> Path:
    return Path(os.environ.get("CROWDSCOPE_CACHE", Path(__file__).resolve().parent.parent / ".cache"))


def shanghaitech_split(part_root: str | Path, split: str) -> list[AnnotatedImage]:
    """Read `part_X/{split}/images/IMG_n.jpg` with `ground-truth/GT_IMG_n.mat`.

    The files' coordinates all lie inside (0, W) x (0, H), so they are taken as continuous pixel coordinates as they
    are (as the public CSRNet code does when it indexes pixels with int(x)); shifting them by the half pixel of a
    1-based convention would push heads annotated on the first row or column out of the image.
    Part B uses the fixed sigma of 15 and Part A geometry-adaptive kernels, as in the CSRNet paper.
    """
    root = Path(part_root).absolute()  # not resolve(): a symlinked part_B keeps its own name
    image_dir = root / split / "images"
    truth_dir = root / split / "ground-truth"
    if not image_dir.is_dir() or not truth_dir.is_dir():
        raise FileNotFoundError(f"{root / split} has no images/ and ground-truth/ folders (ShanghaiTech layout)")
    sigma_mode = "fixed" if re.search(r"part_?b", root.name, re.IGNORECASE) else "adaptive"
    numbered = [p for p in image_dir.glob("IMG_*.jpg") if p.stem.removeprefix("IMG_").isdigit()]
    samples = []
    for image_path in sorted(numbered, key=lambda p: int(p.stem.removeprefix("IMG_"))):
        truth_path = truth_dir / f"GT_{image_path.stem}.mat"
        try:
            points = np.asarray(scipy.io.loadmat(truth_path)["image_info"][0, 0][0, 0][0], dtype=np.float64)
        except (OSError, KeyError, IndexError, ValueError) as error:
            raise ValueError(f"{truth_path}: not a ShanghaiTech ground-truth file ({error!r})") from error
        samples.append(AnnotatedImage(image_path, points.reshape(-1, 2), sigma_mode))
    if not samples:
        raise FileNotFoundError(f"no IMG_*.jpg images in {image_dir}")
    return samples


def _json_points(data: object) -> list[tuple[object, object]]:
    """The coordinate pairs as written (`_read_points_file` makes them numbers, or says why not)."""
    if isinstance(data, dict):
        if "points" not in data:
            raise ValueError('a JSON object needs a "points" list')
        data = data["points"]
    if not isinstance(data, list):
        raise ValueError("expected a list of points")
    points: list[tuple[object, object]] = []
    for index, point in enumerate(data):
        if isinstance(point, dict) and "x" in point and "y" in point:
            points.append((point["x"], point["y"]))
        elif isinstance(point, list | tuple) and len(point) == 2:
            points.append((point[0], point[1]))
        else:
            raise ValueError(f'point {index} is {point!r}, not [x, y] or {{"x": .., "y": ..}}')
    return points


def _csv_points(text: str) -> list[tuple[object, object]]:
    """The coordinate pairs as written (`_read_points_file` makes them numbers, or says why not)."""
    points: list[tuple[object, object]] = []
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if not points and row[0].strip().lower() == "x":
            continue  # header
        if len(row) < 2:
            raise ValueError(f"line {number} has no x,y pair: {','.join(row)!r}")
        points.append((row[0], row[1]))
    return points


def _read_points_file(path: Path) -> np.ndarray:
    """Head points from an operator's JSON or CSV annotation; any malformed content names the file."""
    try:
        text = path.read_text()
        raw = _json_points(json.loads(text)) if path.suffix == ".json" else _csv_points(text)
        points = np.asarray(raw, dtype=np.float64).reshape(-1, 2)
    except (ValueError, TypeError) as error:  # JSONDecodeError is a ValueError
        raise ValueError(f"{path}: {error}") from error
    if not np.isfinite(points).all():
        raise ValueError(f"{path}: coordinates must be finite numbers")
    return points


def point_folder(folder: str | Path, sigma_mode: str = "adaptive") -> list[AnnotatedImage]:
    """An operator's labelled frames: each image beside `NAME.json` or `NAME.csv` with its head points.

    JSON: a list of [x, y] or {"x", "y"} objects, or {"points": [...]}. CSV: one `x,y` per line, optional header.
    Coordinates are in pixels from the image's top-left corner.
    """
    folder = Path(folder)
    samples = []
    for image_path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        annotation = next(
            (image_path.with_suffix(s) for s in (".json", ".csv") if image_path.with_suffix(s).exists()), None
        )
        if annotation is None:
            raise FileNotFoundError(
                f"{image_path.name} has no {image_path.stem}.json or {image_path.stem}.csv beside it"
            )
        points = _read_points_file(annotation)
        width, height = upright_size(image_path)
        outside = (points[:, 0] < 0) | (points[:, 0] > width) | (points[:, 1] < 0) | (points[:, 1] > height)
        if outside.any():
            raise ValueError(f"{annotation.name}: {int(outside.sum())} points lie outside the {width}x{height} image")
        samples.append(AnnotatedImage(image_path, points, sigma_mode))
    if not samples:
        raise FileNotFoundError(f"no images in {folder}")
    return samples


def load_annotated(data: str | Path, split: str) -> list[AnnotatedImage]:
    """The `split` folder of `data`: ShanghaiTech when it has that layout, else an operator's point folder.

    There is no fallback to `data` itself, so training and evaluation never silently share images; a flat folder of
    labelled frames is evaluated with split ".".
    """
    data = Path(data)
    if (data / split / "ground-truth").is_dir():
        return shanghaitech_split(data, split)
    if not (data / split).is_dir():
        raise FileNotFoundError(f"{data / split} is not a folder (expected ShanghaiTech or labelled frames there)")
    return point_folder(data / split)


class GroundTruthCache:
    """Per-head sigmas on disk (keyed by image, points and sigma mode), so epochs never recompute neighbours."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = (directory or default_cache_dir()) / "ground-truth"
        self._memory: dict[str, np.ndarray] = {}

    def _key(self, sample: AnnotatedImage) -> str:
        digest = hashlib.sha1(sample.points.tobytes())
        kernel = f"{GEOMETRY_BETA}|{GEOMETRY_NEIGHBOURS}|{DEFAULT_SIGMA}"  # a change of kernel invalidates the cache
        digest.update(f"{sample.image_path.resolve()}|{sample.sigma_mode}|{kernel}".encode())
        return digest.hexdigest()

    def sigmas(self, sample: AnnotatedImage) -> np.ndarray:
        key = self._key(sample)
        if key in self._memory:
            return self._memory[key]
        path = self.directory / f"{key}.npy"
        if path.exists():
            sigmas = np.load(path)
        else:
            if sample.sigma_mode == "fixed":
                sigmas = fixed_sigmas(sample.points)
            elif sample.sigma_mode == "adaptive":
                sigmas = geometry_adaptive_sigmas(sample.points)
            else:
                raise ValueError(f"sigma mode must be one of {SIGMA_MODES}, not {sample.sigma_mode!r}")
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(temporary, sigmas)
            temporary.replace(path)
        self._memory[key] = sigmas
        return sigmas

    def target(self, sample: AnnotatedImage, height: int, width: int) -> np.ndarray:
        """The full image's density at the model's 1/8 grid."""
        return density_map(sample.points, self.sigmas(sample), height, width, cell=OUTPUT_STRIDE)


@dataclass(frozen=True)
class Augmentation:
    crop: tuple[int, int] = (384, 512)  # height, width
    scale_range: tuple[float, float] = (0.8, 1.2)
    flip: bool = True
    photometric: bool = False  # `photometric_jitter` on every crop

    def __post_init__(self) -> None:
        # The target grid has ceil(crop / 8) cells and the model's output floor(crop / 8): they must agree.
        if any(side <= 0 or side % OUTPUT_STRIDE for side in self.crop):
            raise ValueError(f"crop sides must be positive multiples of {OUTPUT_STRIDE}, not {self.crop}")
        if not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ValueError(f"scale range must be 0 < low <= high, not {self.scale_range}")


def augment(
    rgb: np.ndarray, points: np.ndarray, sigmas: np.ndarray, rng: np.random.Generator, aug: Augmentation
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random scale, crop and horizontal flip of an image and its points together.

    The random scale applies to the image at its working size (`counting.images.working_scale`), the size it is
    counted at. Heads whose centre leaves the crop are dropped; sigmas scale with the image. An image smaller than the
    crop is padded on the right and bottom (the padding is zero after normalisation, i.e. the mean colour).
    """
    import cv2

    height, width = rgb.shape[:2]
    scale = rng.uniform(*aug.scale_range) * working_scale(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    if (new_w, new_h) != (width, height):
        rgb = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        points = points * np.array([new_w / width, new_h / height])
        sigmas = sigmas * scale
    crop_h, crop_w = aug.crop
    top = int(rng.integers(0, max(new_h - crop_h, 0) + 1))
    left = int(rng.integers(0, max(new_w - crop_w, 0) + 1))
    rgb = rgb[top : top + crop_h, left : left + crop_w]
    points = points - np.array([left, top])
    inside = (points[:, 0] >= 0) & (points[:, 0] < rgb.shape[1]) & (points[:, 1] >= 0) & (points[:, 1] < rgb.shape[0])
    points, sigmas = points[inside], sigmas[inside]
    if rgb.shape[:2] != (crop_h, crop_w):
        padded = np.empty((crop_h, crop_w, 3), dtype=np.uint8)
        padded[:] = np.round(255 * np.array(IMAGENET_MEAN)).astype(np.uint8)
        padded[: rgb.shape[0], : rgb.shape[1]] = rgb
        rgb = padded
    if aug.flip and rng.random() < 0.5:
        rgb = rgb[:, ::-1]
        points = points.copy()
        points[:, 0] = crop_w - points[:, 0]
    if aug.photometric:
        rgb = photometric_jitter(rgb, rng)
    return np.ascontiguousarray(rgb), points, sigmas


def photometric_jitter(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What other cameras do to the same scene, none of it moving a head: brightness and contrast (always, mildly),
    saturation, greyscale (night mode, 10%), blur (out of focus or moving, 20%) and JPEG artefacts of a low-bitrate
    stream (25%)."""
    import cv2

    image = rgb.astype(np.float32)
    image = image * rng.uniform(0.7, 1.3) + rng.uniform(-25, 25)
    grey = image.mean(axis=2, keepdims=True)
    image = grey + (image - grey) * (0.0 if rng.random() < 0.1 else rng.uniform(0.6, 1.4))
    image = np.clip(image, 0, 255).astype(np.uint8)
    if rng.random() < 0.2:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.5))
    if rng.random() < 0.25:
        encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 86))])[1]
        # Decoding what imencode has just written cannot fail; OpenCV's stub allows None for any input.
        image = cast(np.ndarray, cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED))
    return image


class DecodedImages:
    """Decoded images kept in memory up to `budget` bytes (Part B's 400 frames take 0.9 GB); past that, an image is
    decoded again at each use (a few milliseconds), so thousands of frames of several data sets fit in memory."""

    def __init__(self, budget: int = 6 * 1024**3) -> None:
        self.budget = budget
        self._images: dict[Path, np.ndarray] = {}
        self._bytes = 0

    def get(self, path: Path) -> np.ndarray:
        if path in self._images:
            return self._images[path]
        rgb = load_rgb(path)
        if self._bytes + rgb.nbytes <= self.budget:
            self._images[path] = rgb
            self._bytes += rgb.nbytes
        return rgb


class CrowdCrops(Dataset):
    """Training samples: augmented crops and their 1/8 density targets, from images decoded once (`DecodedImages`)."""

    def __init__(self, samples: list[AnnotatedImage], aug: Augmentation, cache: GroundTruthCache, seed: int) -> None:
        self.samples = samples
        self.aug = aug
        self.cache = cache
        self.seed = seed
        self.epoch = 0
        self._decoded = DecodedImages()

    def __len__(self) -> int:
        return len(self.samples)

    def unaugmented(self) -> CrowdCrops:
        """The same frames (or crops of them) at their working size and unflipped, as inference sees them, sharing the
        decoded images with this dataset."""
        frames = CrowdCrops(self.samples, replace(self.aug, scale_range=(1.0, 1.0), flip=False), self.cache, self.seed)
        frames._decoded = self._decoded
        return frames

    def image(self, index: int) -> np.ndarray:
        return self._decoded.get(self.samples[index].image_path)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The augmented crop, its 1/8 density target and its heads ([N, 2] x, y pixels of the crop)."""
        sample = self.samples[index]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        rgb, points, sigmas = augment(self.image(index), sample.points, self.cache.sigmas(sample), rng, self.aug)
        target = density_map(points, sigmas, rgb.shape[0], rgb.shape[1], cell=OUTPUT_STRIDE)
        return to_input_tensor(rgb), torch.from_numpy(target)[None], torch.from_numpy(points.astype(np.float32))


def collate_crops(
    batch: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Stack crops and targets; head points stay a list, one tensor a crop, since their numbers differ."""
    images, targets, points = zip(*batch, strict=True)
    return torch.stack(images), torch.stack(targets), list(points)
