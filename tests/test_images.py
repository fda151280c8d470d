"""Image reading/writing: modes, bit depths, EXIF orientation, and bad files named in errors."""


import numpy as np
import pytest
from PIL import Image

from sr_keras.io.images import ImageReadError, read_image, write_png


def _gradient(h, w, c):
    y, x = np.mgrid[0:h, 0:w]
    planes = [(x * 7 + y * 3 + 11 * k) % 256 for k in range(c)]
    return np.stack(planes, axis=-1).astype(np.uint8)


def test_grey_rgb_rgba_are_read_with_their_channels(tmp_path):
    for mode, c in (("L", 1), ("RGB", 3), ("RGBA", 4)):
        array = _gradient(5, 7, c)
        path = tmp_path / f"{mode}.png"
        Image.fromarray(array[..., 0] if c == 1 else array).save(path)
        image = read_image(path)
        assert image.pixels.shape == (5, 7, c) and image.bit_depth == 8
        np.testing.assert_allclose(image.pixels * 255, array.astype(np.float32), atol=1e-4)
    assert read_image(tmp_path / "RGBA.png").has_alpha
    assert read_image(tmp_path / "L.png").rgb.shape == (5, 7, 3)


def test_16bit_grey_and_rgb_png_keep_their_precision(tmp_path):
    grey = (np.arange(20, dtype=np.uint16).reshape(4, 5) * 3000 + 7)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    image = read_image(tmp_path / "g16.png")
    assert image.bit_depth == 16
    np.testing.assert_allclose(image.pixels[..., 0] * 65535, grey, atol=1e-2)

    rgb = np.random.default_rng(0).integers(0, 65536, (4, 5, 3)).astype(np.uint16)
    write_png(tmp_path / "rgb16.png", rgb / 65535.0, bit_depth=16)
    image = read_image(tmp_path / "rgb16.png")
    assert image.bit_depth == 16 and image.pixels.shape == (4, 5, 3)
    np.testing.assert_allclose(image.pixels * 65535, rgb, atol=1e-2)


def test_exif_orientation_is_applied(tmp_path):
    array = _gradient(4, 6, 3)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(array).save(tmp_path / "rot.png", exif=exif)
    image = read_image(tmp_path / "rot.png")
    assert image.pixels.shape == (6, 4, 3)
    np.testing.assert_allclose(image.pixels * 255, np.rot90(array, -1).astype(np.float32), atol=1e-4)


def test_write_png_round_trips_8_and_16_bit_and_clips(tmp_path):
    pixels = np.linspace(-0.2, 1.2, 2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    write_png(tmp_path / "a8.png", pixels)
    write_png(tmp_path / "a16.png", pixels, bit_depth=16)
    back8 = np.asarray(Image.open(tmp_path / "a8.png"))
    assert back8.shape == (2, 3, 4) and back8.min() == 0 and back8.max() == 255
    np.testing.assert_array_equal(back8, np.rint(np.clip(pixels, 0, 1) * 255))
    back16 = read_image(tmp_path / "a16.png")
    assert back16.bit_depth == 16
    np.testing.assert_allclose(back16.pixels, np.clip(pixels, 0, 1), atol=1 / 65535)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


@pytest.mark.parametrize("case, expected", [
    ("missing", "no such file"),
    ("empty", "empty file"),
    ("garbage", "not a readable image"),
    ("truncated", "cannot decode"),
    ("bomb", "decompression bomb"),
    ("huge_header", "decompression bomb"),
    ("float_mode", "unsupported image mode"),
])
def test_bad_files_raise_an_error_naming_the_file(tmp_path, png_header_only, case, expected):
    path = tmp_path / f"{case}.png"
    max_pixels = 10**8
    if case == "empty":
        path.write_bytes(b"")
    elif case == "garbage":
        path.write_bytes(b"this is not an image at all" * 10)
    elif case == "truncated":
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
        path.write_bytes(path.read_bytes()[:300])
    elif case == "bomb":
        Image.fromarray(_gradient(40, 40, 3)).save(path)
        max_pixels = 1000
    elif case == "huge_header":
        png_header_only(path, 100000, 100000)
    elif case == "float_mode":
        path = tmp_path / "float.tif"
        Image.fromarray(np.zeros((4, 4), np.float32)).save(path)
    with pytest.raises(ImageReadError) as info:
        read_image(path, max_pixels=max_pixels)
    assert str(path) in str(info.value)
    assert expected in str(info.value)
