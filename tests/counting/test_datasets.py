"""Annotated images (counting.training.datasets): ShanghaiTech, point folders, the ground-truth cache and
augmentation."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

import counting.training.datasets as datasets
from counting.images import IMAGENET_MEAN, IMAGENET_STD, WORKING_SIDE
from counting.training.datasets import (
    AnnotatedImage,
    Augmentation,
    CrowdCrops,
    GroundTruthCache,
    augment,
    load_annotated,
    point_folder,
    shanghaitech_split,
)

SPLITS = {
    ("A", "train"): (300, 162_413),
    ("A", "test"): (182, 78_862),
    ("B", "train"): (400, 49_151),
    ("B", "test"): (316, 39_121),
}


@pytest.fixture(scope="module")
def splits(shanghaitech: Path) -> dict[tuple[str, str], list[AnnotatedImage]]:
    return {(part, split): shanghaitech_split(shanghaitech / f"part_{part}", split) for part, split in SPLITS}


def image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


# ShanghaiTech ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("part", "split"), list(SPLITS))
def test_shanghaitech_split_sizes_and_head_totals(splits, part: str, split: str) -> None:
    samples = splits[part, split]
    images, heads = SPLITS[part, split]
    assert len(samples) == images
    assert sum(sample.count for sample in samples) == heads
    assert len({sample.image_path for sample in samples}) == images
    numbers = [int(sample.image_path.stem.split("_")[1]) for sample in samples]
    assert numbers == sorted(numbers)  # numeric order, IMG_2 before IMG_10
    for sample in samples:
        assert sample.points.dtype == np.float64
        assert sample.points.ndim == 2 and sample.points.shape[1] == 2
        assert sample.count == len(sample.points) > 0


@pytest.mark.parametrize(("part", "mode"), [("A", "adaptive"), ("B", "fixed")])
def test_shanghaitech_sigma_mode(splits, part: str, mode: str) -> None:
    for split in ("train", "test"):
        assert {sample.sigma_mode for sample in splits[part, split]} == {mode}


def test_shanghaitech_points_lie_inside_their_images_with_x_as_the_column(splits) -> None:
    outside = 0
    for samples in splits.values():
        for sample in samples:
            width, height = image_size(sample.image_path)
            x, y = sample.points[:, 0], sample.points[:, 1]
            outside += int(((x < 0) | (x >= width) | (y < 0) | (y >= height)).sum())
    assert outside == 0
    # Part B frames are all 1024 x 768 landscape: x up to 1024, y up to 768 (swapped axes would exceed 768 in y)
    assert max(sample.points[:, 1].max() for sample in splits["B", "train"]) > 700
    assert max(sample.points[:, 0].max() for sample in splits["B", "train"]) > 1000


def write_shanghaitech_image(split_dir: Path, number: int, points: list[list[float]]) -> None:
    (split_dir / "images").mkdir(parents=True, exist_ok=True)
    (split_dir / "ground-truth").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48)).save(split_dir / "images" / f"IMG_{number}.jpg")
    info = np.zeros((1, 1), dtype=[("location", "O"), ("number", "O")])
    info[0, 0]["location"] = np.array(points, dtype=np.float64).reshape(-1, 2)
    info[0, 0]["number"] = np.array([[len(points)]], dtype=np.float64)
    image_info = np.empty((1, 1), dtype=object)
    image_info[0, 0] = info
    scipy.io.savemat(split_dir / "ground-truth" / f"GT_IMG_{number}.mat", {"image_info": image_info})


def test_shanghaitech_split_reads_points_as_given_and_orders_numerically(tmp_path: Path) -> None:
    root = tmp_path / "part_B"
    write_shanghaitech_image(root / "train", 10, [[1.0, 1.0], [64.0, 48.0]])
    write_shanghaitech_image(root / "train", 2, [[10.5, 20.5]])
    samples = shanghaitech_split(root, "train")
    assert [sample.image_path.name for sample in samples] == ["IMG_2.jpg", "IMG_10.jpg"]
    np.testing.assert_allclose(samples[0].points, [[10.5, 20.5]])
    np.testing.assert_allclose(samples[1].points, [[1.0, 1.0], [64.0, 48.0]])
    assert all(sample.sigma_mode == "fixed" for sample in samples)
    assert shanghaitech_split(root.rename(tmp_path / "part_A"), "train")[0].sigma_mode == "adaptive"


def test_shanghaitech_missing_folders_raise_file_not_found(tmp_path: Path, shanghaitech: Path) -> None:
    with pytest.raises(FileNotFoundError):
        shanghaitech_split(tmp_path / "part_B", "train")
    with pytest.raises(FileNotFoundError):
        shanghaitech_split(shanghaitech / "part_B", "validation")
    (tmp_path / "part_B" / "train" / "images").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="ground-truth"):
        shanghaitech_split(tmp_path / "part_B", "train")
    (tmp_path / "part_B" / "train" / "ground-truth").mkdir()
    with pytest.raises(FileNotFoundError, match="no IMG_"):
        shanghaitech_split(tmp_path / "part_B", "train")


# Point folders -----------------------------------------------------------------------------------------------------


def blank_image(path: Path, width: int = 40, height: int = 30) -> None:
    Image.new("RGB", (width, height), (20, 20, 20)).save(path)


EXPECTED_POINTS = [[1.5, 2.0], [39.0, 29.5], [20.25, 0.0]]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("list.json", json.dumps(EXPECTED_POINTS)),
        ("objects.json", json.dumps([{"x": x, "y": y} for x, y in EXPECTED_POINTS])),
        ("wrapped.json", json.dumps({"points": EXPECTED_POINTS})),
        ("wrapped_objects.json", json.dumps({"points": [{"x": x, "y": y} for x, y in EXPECTED_POINTS]})),
        ("plain.csv", "".join(f"{x},{y}\n" for x, y in EXPECTED_POINTS)),
        ("header.csv", "x,y\n" + "".join(f"{x},{y}\n" for x, y in EXPECTED_POINTS)),
        ("header_blank_lines.csv", "X,Y\n\n" + "".join(f"{x},{y}\n\n" for x, y in EXPECTED_POINTS)),
    ],
    ids=lambda value: value if value.endswith((".json", ".csv")) else "",
)
def test_point_folder_reads_json_and_csv(tmp_path: Path, name: str, content: str) -> None:
    stem = Path(name).stem
    blank_image(tmp_path / f"{stem}.png")
    (tmp_path / name).write_text(content)
    [sample] = point_folder(tmp_path)
    assert sample.image_path == tmp_path / f"{stem}.png"
    assert sample.sigma_mode == "adaptive"
    np.testing.assert_allclose(sample.points, EXPECTED_POINTS)


def test_point_folder_reads_several_images_in_order_with_sigma_mode(tmp_path: Path) -> None:
    blank_image(tmp_path / "b.jpg")
    blank_image(tmp_path / "a.png")
    (tmp_path / "a.json").write_text("[]")
    (tmp_path / "b.csv").write_text("3,4\n5,6\n")
    (tmp_path / "notes.txt").write_text("not an image")
    samples = point_folder(tmp_path, sigma_mode="fixed")
    assert [sample.image_path.name for sample in samples] == ["a.png", "b.jpg"]
    assert [sample.count for sample in samples] == [0, 2]
    assert samples[0].points.shape == (0, 2)
    assert all(sample.sigma_mode == "fixed" for sample in samples)


def test_point_folder_image_without_annotation_is_an_error(tmp_path: Path) -> None:
    blank_image(tmp_path / "a.png")
    (tmp_path / "a.json").write_text("[[1, 1]]")
    blank_image(tmp_path / "lonely.jpg")
    with pytest.raises(FileNotFoundError, match=r"lonely\.jpg"):
        point_folder(tmp_path)


def test_point_folder_points_outside_the_image_are_an_error(tmp_path: Path) -> None:
    blank_image(tmp_path / "frame.png", width=40, height=30)
    (tmp_path / "frame.json").write_text(json.dumps([[10, 10], [45, 10], [10, -1]]))
    with pytest.raises(ValueError, match=r"2 points.*40x30") as caught:
        point_folder(tmp_path)
    assert "frame.json" in str(caught.value)


def test_point_folder_without_images_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("[]")
    with pytest.raises(FileNotFoundError):
        point_folder(tmp_path)


def test_load_annotated_picks_shanghaitech_or_point_folder(tmp_path: Path, shanghaitech: Path) -> None:
    test_b = load_annotated(shanghaitech / "part_B", "test")
    assert len(test_b) == 316 and test_b[0].sigma_mode == "fixed"

    # data/split as a point folder
    (tmp_path / "ops" / "train").mkdir(parents=True)
    blank_image(tmp_path / "ops" / "train" / "cam1.png")
    (tmp_path / "ops" / "train" / "cam1.json").write_text("[[5, 5]]")
    [sample] = load_annotated(tmp_path / "ops", "train")
    assert sample.image_path.name == "cam1.png" and sample.count == 1

    # a flat folder is reached with split "."; a missing split is an error, never a silent fallback to data itself
    (tmp_path / "flat").mkdir()
    blank_image(tmp_path / "flat" / "cam2.png")
    (tmp_path / "flat" / "cam2.csv").write_text("1,2\n3,4\n")
    [sample] = load_annotated(tmp_path / "flat", ".")
    assert sample.image_path.name == "cam2.png" and sample.count == 2
    with pytest.raises(FileNotFoundError, match="test is not a folder"):
        load_annotated(tmp_path / "flat", "test")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.json", '{"heads": [[1, 2]]}', '"points" list'),
        ("a.json", '[{"x": 1}]', "point 0"),
        ("a.json", "[1, 2]", "point 0"),
        ("a.json", "[[1, 2", "a.json"),
        ("a.json", '[["one", 2]]', "could not convert"),
        ("a.json", "[[NaN, 2]]", "finite"),
        ("a.csv", "1\n", "line 1 has no x,y pair"),
        ("a.csv", "1,2\nten,3\n", "could not convert"),
    ],
)
def test_malformed_annotations_name_the_file(tmp_path: Path, name: str, content: str, message: str) -> None:
    blank_image(tmp_path / "a.png")
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=message) as error:
        point_folder(tmp_path)
    assert "a." in str(error.value)


def test_annotation_comments_are_skipped(tmp_path: Path) -> None:
    blank_image(tmp_path / "a.png")
    (tmp_path / "a.csv").write_text("# exported by a labelling tool\nx,y\n1,2\n")
    assert point_folder(tmp_path)[0].count == 1


def test_point_bounds_follow_exif_orientation(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[274] = 6  # stored 40 wide x 20 high, shown 20 wide x 40 high
    Image.new("RGB", (40, 20)).save(tmp_path / "a.jpg", exif=exif)
    (tmp_path / "a.json").write_text("[[10, 35]]")
    assert point_folder(tmp_path)[0].count == 1
    (tmp_path / "a.json").write_text("[[35, 10]]")
    with pytest.raises(ValueError, match="outside the 20x40 image"):
        point_folder(tmp_path)


@pytest.mark.parametrize("crop", [(380, 512), (0, 512)])
def test_crops_must_fit_the_density_grid(crop: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="multiples of 8"):
        Augmentation(crop=crop)


# Ground-truth cache ------------------------------------------------------------------------------------------------


def synthetic_sample(tmp_path: Path, name: str, count: int, mode: str = "adaptive", seed: int = 0) -> AnnotatedImage:
    path = tmp_path / f"{name}.png"
    blank_image(path, 80, 60)
    rng = np.random.default_rng(seed)
    points = np.column_stack([rng.uniform(0, 80, count), rng.uniform(0, 60, count)])
    return AnnotatedImage(path, points, mode)


def test_ground_truth_cache_writes_and_reads_back_without_recomputing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_root = tmp_path / "cache"
    monkeypatch.setenv("CROWDSCOPE_CACHE", str(cache_root))
    samples = [synthetic_sample(tmp_path, "one", 30, seed=1), synthetic_sample(tmp_path, "two", 12, seed=2)]
    first = GroundTruthCache()
    computed = [first.sigmas(sample) for sample in samples]
    files = sorted((cache_root / "ground-truth").iterdir())
    assert len(files) == 2 and all(file.suffix == ".npy" and ".tmp" not in file.name for file in files)
    np.testing.assert_allclose(computed[0], datasets.geometry_adaptive_sigmas(samples[0].points))

    def must_not_run(*args, **kwargs):
        raise AssertionError("sigmas were recomputed instead of read from the cache")

    monkeypatch.setattr(datasets, "geometry_adaptive_sigmas", must_not_run)
    second = GroundTruthCache()
    for sample, expected in zip(samples, computed, strict=True):
        np.testing.assert_array_equal(second.sigmas(sample), expected)
        target = second.target(sample, 60, 80)
        assert target.shape == (8, 10)
        assert abs(float(target.sum(dtype=np.float64)) - sample.count) < 1e-3
    # The patch is live: a sample that is not cached yet does need the computation
    with pytest.raises(AssertionError, match="recomputed"):
        second.sigmas(synthetic_sample(tmp_path, "three", 5, seed=3))


def test_ground_truth_cache_key_depends_on_points_and_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROWDSCOPE_CACHE", str(tmp_path / "cache"))
    cache = GroundTruthCache()
    adaptive = synthetic_sample(tmp_path, "frame", 20, "adaptive", seed=4)
    fixed = AnnotatedImage(adaptive.image_path, adaptive.points, "fixed")
    moved = AnnotatedImage(adaptive.image_path, adaptive.points + 1.0, "adaptive")
    np.testing.assert_allclose(cache.sigmas(fixed), np.full(20, 15.0))
    assert not np.allclose(cache.sigmas(adaptive), 15.0)
    cache.sigmas(moved)
    assert len(list((tmp_path / "cache" / "ground-truth").glob("*.npy"))) == 3


def test_ground_truth_cache_explicit_directory_and_bad_mode(tmp_path: Path) -> None:
    cache = GroundTruthCache(tmp_path / "elsewhere")
    sample = synthetic_sample(tmp_path, "frame", 4, "fixed")
    cache.sigmas(sample)
    assert len(list((tmp_path / "elsewhere" / "ground-truth").glob("*.npy"))) == 1
    with pytest.raises(ValueError, match="sigma mode"):
        cache.sigmas(AnnotatedImage(sample.image_path, sample.points, "gaussian"))


# Augmentation ------------------------------------------------------------------------------------------------------


def dotted_image(height: int, width: int, points: np.ndarray) -> np.ndarray:
    """Black image with a white 3 x 3 dot centred on the pixel that holds each point."""
    rgb = np.zeros((height, width, 3), dtype=np.uint8)
    for x, y in points:
        col, row = int(x), int(y)
        rgb[max(row - 1, 0) : row + 2, max(col - 1, 0) : col + 2] = 255
    return rgb


def coordinate_image(height: int, width: int) -> np.ndarray:
    """Each pixel holds its own column and row (both below 256), so a crop tells where it came from."""
    rgb = np.zeros((height, width, 3), dtype=np.uint8)
    rgb[:, :, 0] = np.arange(width, dtype=np.uint8)[None, :]
    rgb[:, :, 1] = np.arange(height, dtype=np.uint8)[:, None]
    rgb[:, :, 2] = 7
    return rgb


def crop_window(crop: np.ndarray) -> tuple[int, int, bool]:
    """(left, top, flipped) of a scale-1 crop of coordinate_image."""
    flipped = int(crop[0, 0, 0]) > int(crop[0, 1, 0])
    left = int(crop[0, -1, 0]) if flipped else int(crop[0, 0, 0])
    return left, int(crop[0, 0, 1]), flipped


def grid_points(height: int, width: int, step: int = 9) -> np.ndarray:
    xs, ys = np.meshgrid(np.arange(4, width - 2, step) + 0.5, np.arange(3, height - 2, step) + 0.5)
    rng = np.random.default_rng(5)
    jitter = rng.uniform(-0.45, 0.45, (xs.size, 2))
    return np.column_stack([xs.ravel(), ys.ravel()]) + jitter


def test_augment_keeps_image_points_and_sigmas_together() -> None:
    height, width = 200, 250
    points = grid_points(height, width)
    sigmas = np.arange(1, len(points) + 1, dtype=np.float64)  # a label per head
    dots = dotted_image(height, width, points)
    coords = coordinate_image(height, width)
    aug = Augmentation(crop=(96, 128), scale_range=(1.0, 1.0), flip=True)
    flips = dropped = 0
    for seed in range(16):
        crop, kept, kept_sigmas = augment(dots, points, sigmas, np.random.default_rng(seed), aug)
        coord_crop, _, _ = augment(coords, points, sigmas, np.random.default_rng(seed), aug)
        assert crop.shape == (96, 128, 3) and crop.dtype == np.uint8
        assert len(kept) == len(kept_sigmas)
        # every returned point lands on a white pixel
        for x, y in kept:
            assert crop[int(y), int(x)].min() == 255, (seed, x, y)
        # and it is the head its sigma says it is, moved by the crop (and the flip)
        left, top, flipped = crop_window(coord_crop)
        inside = (
            (points[:, 0] >= left) & (points[:, 0] < left + 128) & (points[:, 1] >= top) & (points[:, 1] < top + 96)
        )
        expected = points[inside] - [left, top]
        if flipped:
            expected[:, 0] = 128 - expected[:, 0]
        np.testing.assert_array_equal(kept_sigmas, sigmas[inside])
        np.testing.assert_allclose(kept, expected, atol=1e-9)
        window = dots[top : top + 96, left : left + 128]
        np.testing.assert_array_equal(crop, window[:, ::-1] if flipped else window)
        flips += flipped
        dropped += int((~inside).sum())
    assert 0 < flips < 16  # both branches were exercised
    assert dropped > 0
    # the inputs are not modified
    np.testing.assert_array_equal(sigmas, np.arange(1, len(points) + 1))


def test_augment_without_flip_is_a_plain_crop() -> None:
    height, width = 120, 160
    points = grid_points(height, width)
    coords = coordinate_image(height, width)
    aug = Augmentation(crop=(64, 64), scale_range=(1.0, 1.0), flip=False)
    for seed in range(6):
        crop, kept, _ = augment(coords, points, np.ones(len(points)), np.random.default_rng(seed), aug)
        left, top, flipped = crop_window(crop)
        assert not flipped
        np.testing.assert_array_equal(crop, coords[top : top + 64, left : left + 64])
        assert np.all(kept >= 0) and np.all(kept < 64)


def test_augment_pads_an_image_smaller_than_the_crop() -> None:
    height, width = 50, 70
    points = grid_points(height, width, step=7)
    dots = dotted_image(height, width, points)
    aug = Augmentation(crop=(96, 128), scale_range=(1.0, 1.0), flip=False)
    crop, kept, kept_sigmas = augment(dots, points, np.full(len(points), 4.0), np.random.default_rng(0), aug)
    assert crop.shape == (96, 128, 3)
    np.testing.assert_array_equal(crop[:height, :width], dots)  # padded on the right and bottom
    mean_colour = np.round(255 * np.array(IMAGENET_MEAN)).astype(np.uint8)
    assert np.all(crop[height:] == mean_colour) and np.all(crop[:, width:] == mean_colour)
    np.testing.assert_allclose(kept, points)
    np.testing.assert_allclose(kept_sigmas, 4.0)

    flipped_aug = Augmentation(crop=(96, 128), scale_range=(1.0, 1.0), flip=True)
    for seed in range(6):
        crop, kept, _ = augment(dots, points, np.full(len(points), 4.0), np.random.default_rng(seed), flipped_aug)
        assert crop.shape == (96, 128, 3) and len(kept) == len(points)
        for x, y in kept:
            assert crop[int(y), int(x)].min() == 255


def test_augment_scales_points_and_sigmas_with_the_image() -> None:
    height, width = 40, 50
    points = np.array([[10.5, 8.5], [25.5, 20.5], [40.5, 30.5]])
    sigmas = np.array([2.0, 3.0, 5.0])
    dots = dotted_image(height, width, points)
    aug = Augmentation(crop=(96, 112), scale_range=(2.0, 2.0), flip=False)
    crop, kept, kept_sigmas = augment(dots, points, sigmas, np.random.default_rng(0), aug)
    assert crop.shape == (96, 112, 3)
    np.testing.assert_allclose(kept_sigmas, 2 * sigmas)
    np.testing.assert_allclose(kept, 2 * points)
    for x, y in kept:
        assert crop[int(y), int(x)].min() > 200  # still on its (now 6 x 6) dot
    assert crop[:80, :100].max() == 255 and np.all(crop[80:, :] == np.round(255 * np.array(IMAGENET_MEAN)))


def test_augment_scales_a_frame_past_the_working_size_from_its_working_size() -> None:
    # Counted frames are shrunk to WORKING_SIDE on their longer side, so training crops scale from there too.
    height, width = 64, 2 * WORKING_SIDE
    points = np.array([[1000.5, 20.5], [3000.5, 40.5]])
    sigmas = np.array([4.0, 6.0])
    aug = Augmentation(crop=(64, WORKING_SIDE), scale_range=(1.0, 1.0), flip=False)
    dots = dotted_image(height, width, points)
    crop, kept, kept_sigmas = augment(dots, points, sigmas, np.random.default_rng(0), aug)
    assert crop.shape == (64, WORKING_SIDE, 3)
    np.testing.assert_allclose(kept, points / 2)
    np.testing.assert_allclose(kept_sigmas, sigmas / 2)
    for x, y in kept:
        assert crop[int(y), int(x)].min() > 100  # its dot, shrunk with the frame


# CrowdCrops --------------------------------------------------------------------------------------------------------


def denormalise(tensor: torch.Tensor) -> np.ndarray:
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return torch.round((tensor * std + mean) * 255).permute(1, 2, 0).numpy().astype(np.int64)


def test_crowd_crops_give_input_and_target_with_the_crop_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROWDSCOPE_CACHE", str(tmp_path / "cache"))
    height, width = 500, 700
    # Pixels encode their coordinates (column = R + 256 x (B // 16), row = G + 256 x (B % 16)).
    cols, rows = np.meshgrid(np.arange(width), np.arange(height))
    rgb = np.stack([cols % 256, rows % 256, (cols // 256) * 16 + rows // 256], axis=2).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "big.png")
    Image.fromarray(rgb[:300, :400]).save(tmp_path / "small.png")
    rng = np.random.default_rng(6)
    big_points = np.column_stack([rng.uniform(0, width, 400), rng.uniform(0, height, 400)])
    small_points = big_points[(big_points[:, 0] < 400) & (big_points[:, 1] < 300)]
    (tmp_path / "big.json").write_text(json.dumps(big_points.tolist()))
    (tmp_path / "small.json").write_text(json.dumps(small_points.tolist()))
    samples = point_folder(tmp_path, sigma_mode="adaptive")
    assert [sample.image_path.name for sample in samples] == ["big.png", "small.png"]

    dataset = CrowdCrops(samples, Augmentation(scale_range=(1.0, 1.0)), GroundTruthCache(), seed=3)
    assert len(dataset) == 2
    counts = []
    for epoch in range(3):
        dataset.epoch = epoch
        for index in range(2):
            image, target, points = dataset[index]
            assert len(points) == round(float(target.sum(dtype=torch.float64)))
            assert image.dtype == torch.float32 and tuple(image.shape) == (3, 384, 512)
            assert target.dtype == torch.float32 and tuple(target.shape) == (1, 48, 64)
            if index == 1:  # smaller than the crop: padded, every head kept
                expected = len(small_points)
            else:
                pixels = denormalise(image)
                corner_cols = pixels[0, [0, -1], 0] + 256 * (pixels[0, [0, -1], 2] // 16)
                left = int(corner_cols.min())
                top = int(pixels[0, 0, 1] + 256 * (pixels[0, 0, 2] % 16))
                inside = (
                    (big_points[:, 0] >= left)
                    & (big_points[:, 0] < left + 512)
                    & (big_points[:, 1] >= top)
                    & (big_points[:, 1] < top + 384)
                )
                expected = int(inside.sum())
                assert 0 < expected < len(big_points)
            counts.append(expected)
            assert float(target.sum(dtype=torch.float64)) == pytest.approx(expected, abs=1e-3)
    assert len(set(counts[0::2])) > 1  # different crops across epochs

    # The same (seed, epoch, index) gives the same sample
    first_image, first_target, _ = dataset[0]
    again_image, again_target, _ = dataset[0]
    assert torch.equal(first_image, again_image) and torch.equal(first_target, again_target)
    assert math.isclose(float(first_target.sum()), counts[-2], abs_tol=1e-3)


def test_photometric_jitter_changes_pixels_not_points_and_keeps_the_crop() -> None:
    rgb = coordinate_image(96, 128)
    points = grid_points(96, 128)
    sigmas = np.full(len(points), 4.0)
    plain = Augmentation((96, 128), (1.0, 1.0), flip=False)
    jittered = Augmentation((96, 128), (1.0, 1.0), flip=False, photometric=True)
    changed = 0
    for seed in range(20):
        base, base_points, base_sigmas = augment(rgb, points, sigmas, np.random.default_rng(seed), plain)
        out, out_points, out_sigmas = augment(rgb, points, sigmas, np.random.default_rng(seed), jittered)
        assert out.shape == base.shape and out.dtype == np.uint8
        np.testing.assert_array_equal(out_points, base_points)
        np.testing.assert_array_equal(out_sigmas, base_sigmas)
        changed += not np.array_equal(out, base)
    assert changed == 20


def test_photometric_jitter_sometimes_makes_a_frame_grey() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    outputs = [datasets.photometric_jitter(rgb, np.random.default_rng(seed)) for seed in range(100)]
    grey = sum(int(np.ptp(out.astype(int), axis=2).max() <= 12) for out in outputs)  # JPEG may tint a grey pixel
    assert 3 <= grey <= 25
