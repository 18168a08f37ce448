"""Decoding frames (counting.images.load_rgb) and turning them into model input (to_input_tensor)."""

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from counting.images import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    WORKING_SIDE,
    ImageError,
    density_on_frame_grid,
    load_rgb,
    to_input_tensor,
    to_working_size,
    working_scale,
)

EXIF_ORIENTATION = 274


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def red_left_half(width: int = 40, height: int = 20) -> Image.Image:
    image = Image.new("RGB", (width, height), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, width // 2, height))
    return image


def is_red(pixel: np.ndarray) -> bool:
    return pixel[0] > 200 and pixel[1] < 50 and pixel[2] < 50


def is_blue(pixel: np.ndarray) -> bool:
    return pixel[0] < 50 and pixel[1] < 50 and pixel[2] > 200


def test_plain_rgb_jpeg_from_path(tmp_path: Path) -> None:
    path = tmp_path / "frame.jpg"
    red_left_half().save(path, quality=95)
    rgb = load_rgb(path)
    assert rgb.dtype == np.uint8
    assert rgb.shape == (20, 40, 3)
    assert is_red(rgb[10, 5]) and is_blue(rgb[10, 35])
    # str paths work as well as Path objects
    assert np.array_equal(load_rgb(str(path)), rgb)


def test_exif_orientation_6_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "rotated.jpg"
    red_left_half(40, 20).save(path, quality=95, exif=exif)

    rgb = load_rgb(path)
    # Stored 40 wide x 20 high; upright it is 20 wide x 40 high.
    assert rgb.shape == (40, 20, 3)
    # Turning the stored image clockwise brings its left (red) half to the top.
    assert is_red(rgb[5, 10]) and is_red(rgb[15, 3])
    assert is_blue(rgb[25, 10]) and is_blue(rgb[35, 17])
    # The same through bytes
    assert np.array_equal(load_rgb(path.read_bytes()), rgb)


def test_greyscale_png_gives_three_equal_channels() -> None:
    grey = np.arange(12 * 16, dtype=np.uint8).reshape(12, 16)
    rgb = load_rgb(encode(Image.fromarray(grey, mode="L"), "PNG"))
    assert rgb.shape == (12, 16, 3)
    assert rgb.dtype == np.uint8
    for channel in range(3):
        assert np.array_equal(rgb[:, :, channel], grey)


def test_palette_png_becomes_rgb() -> None:
    palette_image = red_left_half(16, 8).convert("P")
    assert palette_image.mode == "P"
    rgb = load_rgb(encode(palette_image, "PNG"))
    assert rgb.shape == (8, 16, 3)
    assert is_red(rgb[4, 2]) and is_blue(rgb[4, 13])


def test_cmyk_jpeg_becomes_rgb_with_sensible_colours() -> None:
    cmyk = Image.new("CMYK", (32, 16), (0, 255, 255, 0))  # red: no cyan, full magenta and yellow
    cmyk.paste((255, 255, 0, 0), (16, 0, 32, 16))  # blue: full cyan and magenta
    data = encode(cmyk, "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    rgb = load_rgb(data)
    assert rgb.shape == (16, 32, 3)
    assert rgb.dtype == np.uint8
    assert is_red(rgb[8, 4]), rgb[8, 4]
    assert is_blue(rgb[8, 28]), rgb[8, 28]


def test_16_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    wide = np.array([[0, 1000, 32768, 65535], [65535, 32768, 1000, 0]], dtype=np.uint16)
    path = tmp_path / "thermal.png"
    Image.fromarray(wide).save(path)
    assert Image.open(path).mode.startswith("I")  # really stored and read back as 16-bit

    rgb = load_rgb(path)
    assert rgb.shape == (2, 4, 3)
    assert rgb.dtype == np.uint8
    assert np.array_equal(rgb[:, :, 0], rgb[:, :, 1]) and np.array_equal(rgb[:, :, 0], rgb[:, :, 2])
    grey = rgb[:, :, 0].astype(int)
    assert grey[0, 0] == 0
    assert grey[0, 3] == 255 and grey[1, 0] == 255
    assert abs(grey[0, 2] - 128) <= 1  # 32768 / 65535 x 255 = 127.5; clipping would give 255
    assert abs(grey[0, 1] - 4) <= 1  # 1000 / 65535 x 255 = 3.9
    # Scaling keeps the order of intensities
    assert grey[0, 0] < grey[0, 1] < grey[0, 2] < grey[0, 3]


def test_dark_16_bit_frame_stays_dark(tmp_path: Path) -> None:
    path = tmp_path / "night.png"
    Image.fromarray(np.array([[0, 100, 200, 300]], dtype=np.uint16)).save(path)
    assert load_rgb(path)[0, :, 0].tolist() == [0, 0, 1, 1]  # on the 16-bit scale, not stretched to 8 bits


def test_rgba_drops_alpha() -> None:
    rgba = np.zeros((6, 10, 4), dtype=np.uint8)
    rgba[:, :, 0], rgba[:, :, 1], rgba[:, :, 2] = 10, 200, 30
    rgba[:, :5, 3] = 255
    rgba[:, 5:, 3] = 0  # transparent half keeps its colour values
    rgb = load_rgb(encode(Image.fromarray(rgba, mode="RGBA"), "PNG"))
    assert rgb.shape == (6, 10, 3)
    assert np.all(rgb == np.array([10, 200, 30], dtype=np.uint8))


def test_bytes_input_matches_path_input(tmp_path: Path) -> None:
    path = tmp_path / "frame.png"
    pixels = np.random.default_rng(0).integers(0, 256, (9, 13, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    assert np.array_equal(load_rgb(path.read_bytes()), pixels)
    assert np.array_equal(load_rgb(path), pixels)


def truncated_jpeg() -> bytes:
    pixels = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encode(Image.fromarray(pixels), "JPEG", quality=90)
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    "data",
    [b"", bytes(np.random.default_rng(2).integers(0, 256, 500, dtype=np.uint8)), truncated_jpeg()],
    ids=["zero-bytes", "random-bytes", "truncated-jpeg"],
)
def test_unreadable_bytes_raise_image_error(data: bytes) -> None:
    with pytest.raises(ImageError, match="uploaded bytes"):
        load_rgb(data)


@pytest.mark.parametrize(
    "data",
    [b"", b"this is not an image at all " * 20, truncated_jpeg()],
    ids=["zero-bytes", "text", "truncated-jpeg"],
)
def test_unreadable_files_raise_image_error_naming_the_file(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "broken_frame.jpg"
    path.write_bytes(data)
    with pytest.raises(ImageError) as caught:
        load_rgb(path)
    assert str(path) in str(caught.value)
    # ImageError is a ValueError, so callers that catch ValueError also catch it
    assert isinstance(caught.value, ValueError)


def test_missing_file_raises_image_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.jpg"
    with pytest.raises(ImageError, match=r"nowhere\.jpg"):
        load_rgb(path)


def test_to_input_tensor_shape_dtype_and_channel_order() -> None:
    rgb = np.zeros((5, 7, 3), dtype=np.uint8)
    rgb[:, :, 0] = 255  # pure red
    tensor = to_input_tensor(rgb)
    assert isinstance(tensor, torch.Tensor)
    assert tensor.dtype == torch.float32
    assert tuple(tensor.shape) == (3, 5, 7)
    expected = [(1.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], -IMAGENET_MEAN[1] / IMAGENET_STD[1]]
    expected.append(-IMAGENET_MEAN[2] / IMAGENET_STD[2])
    for channel in range(3):
        assert torch.allclose(tensor[channel], torch.full((5, 7), expected[channel]), atol=1e-5)


def test_to_input_tensor_maps_the_mean_colour_to_zero() -> None:
    mean_colour = np.round(255 * np.array(IMAGENET_MEAN)).astype(np.uint8)
    rgb = np.broadcast_to(mean_colour, (4, 6, 3)).copy()
    tensor = to_input_tensor(rgb)
    assert tensor.abs().max().item() < 0.01


def test_to_input_tensor_accepts_non_contiguous_views() -> None:
    rgb = np.random.default_rng(3).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    flipped = rgb[:, ::-1]
    assert torch.allclose(to_input_tensor(flipped), to_input_tensor(flipped.copy()))
    assert torch.allclose(to_input_tensor(flipped), torch.flip(to_input_tensor(rgb), dims=[2]))


def test_a_frame_within_the_working_size_is_counted_as_it_is() -> None:
    rgb = np.zeros((WORKING_SIDE, WORKING_SIDE // 2, 3), dtype=np.uint8)
    assert working_scale(*rgb.shape[:2]) == 1.0
    assert to_working_size(rgb) is rgb


@pytest.mark.parametrize(("height", "width"), [(3000, 4000), (4000, 3000), (900, 6000)])
def test_a_larger_frame_is_shrunk_to_the_working_size_on_its_longer_side(height: int, width: int) -> None:
    rgb = np.full((height, width, 3), 200, dtype=np.uint8)
    working = to_working_size(rgb)
    assert max(working.shape[:2]) == WORKING_SIDE
    assert working.shape[0] / working.shape[1] == pytest.approx(height / width, rel=0.01)
    assert np.all(working == 200)  # area-averaged: a flat frame stays flat


def test_a_shrunk_frames_density_is_spread_over_the_frames_own_grid_with_its_total() -> None:
    # A frame of 4000 x 3000 counted at 2048 x 1536: its map is 192 x 256 cells, the frame's grid 375 x 500.
    density = np.zeros((192, 256), dtype=np.float32)
    density[10:14, 20:24] = 0.5  # 8 people near the top left
    density[150, 200] = -0.25  # a model's negative noise is carried, not dropped
    spread = density_on_frame_grid(density, 3000, 4000, 8)
    assert spread.shape == (375, 500) and spread.dtype == np.float32
    assert spread.sum(dtype=np.float64) == pytest.approx(7.75, rel=1e-5)
    top_left = spread[: 375 // 8, : 500 // 8].sum(dtype=np.float64)
    assert top_left == pytest.approx(8.0, abs=0.05)  # the people stay where they were in the frame
    assert density_on_frame_grid(density, 1536, 2048, 8) is density  # already on its frame's grid
