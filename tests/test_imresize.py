"""The MATLAB bicubic port against the benchmark LR images MATLAB made, plus resize invariants."""

import numpy as np
import pytest

from sr_keras.io.images import read_image
from sr_keras.ops.imresize import imresize, imresize_tf, resize_weights, round_half_away


def _pairs(shared_dir, dataset, scale):
    folder = shared_dir / "data" / "benchmark" / dataset / f"x{scale}"
    for hr_path in sorted((folder / "HR").glob("*.png")):
        hr = np.round(read_image(hr_path).rgb.astype(np.float64) * 255)
        lr = np.round(read_image(folder / "LR" / hr_path.name).rgb.astype(np.float64) * 255)
        yield hr_path.name, hr, lr


def _interior_differences(shared_dir, dataset, scale):
    """|ours - MATLAB| per image on the interior (2 LR pixels dropped at each border)."""
    out = {}
    for name, hr, lr in _pairs(shared_dir, dataset, scale):
        ours = imresize(hr, 1.0 / scale, round_uint8=True)
        assert ours.shape == lr.shape, name
        out[name] = np.abs(ours - lr)[2:-2, 2:-2]
    assert out, f"no images in {dataset} x{scale}"
    return out


@pytest.mark.parametrize("scale", [2, 4])
def test_set5_all_interior_values_within_one_grey_level(shared_dir, scale):
    diffs = _interior_differences(shared_dir, "Set5", scale)
    for name, d in diffs.items():
        assert (d <= 1).all(), f"{name}: {(d > 1).sum()} values differ by more than 1"
        assert d.mean() <= 0.16, name
        # Rounding each pass half away from zero, as MATLAB does on uint8, makes the port exact.
        assert d.max() == 0, f"{name}: max difference {d.max()}"


@pytest.mark.parametrize("scale", [2, 4])
def test_set14_interior_within_one_grey_level(shared_dir, scale):
    diffs = _interior_differences(shared_dir, "Set14", scale)
    total = sum(d.size for d in diffs.values())
    within = sum((d <= 1).sum() for d in diffs.values())
    for name, d in diffs.items():
        assert (d <= 1).mean() >= 0.988, name
        assert d.mean() <= 0.16, name
    assert within / total >= 0.999


def test_numpy_half_to_even_rounding_would_not_be_exact(shared_dir):
    """Why `round_half_away` exists: the first pass yields exact halves that numpy rounds to even."""
    (name, hr, lr), = [p for p in _pairs(shared_dir, "Set5", 2) if p[0] == "img_001.png"]
    first = np.tensordot(resize_weights(hr.shape[0], hr.shape[0] // 2, 0.5), hr, axes=([1], [0]))
    halves = np.isclose(first % 1, 0.5)
    assert halves.sum() > 0
    assert (round_half_away(first[halves]) != np.round(first[halves])).any()


def test_output_sizes_are_matlab_ceil():
    image = np.zeros((37, 50, 3))
    assert imresize(image, 0.5).shape == (19, 25, 3)
    assert imresize(image, 0.25).shape == (10, 13, 3)
    assert imresize(image, 0.125).shape == (5, 7, 3)
    for s in (2, 4, 8):
        assert imresize(image[:9, :7], s).shape == (9 * s, 7 * s, 3)
    assert imresize(image[..., 0], output_shape=(12, 40)).shape == (12, 40)


def test_weights_are_normalised_and_mirror_at_borders():
    w = resize_weights(10, 5, 0.5)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    # MATLAB's symmetric extension repeats the edge sample: a constant stays constant.
    np.testing.assert_allclose(imresize(np.full((10, 12), 7.0), 0.5), 7.0)
    np.testing.assert_allclose(imresize(np.full((5, 6), 3.0), 4), 3.0)


def test_upscaling_reproduces_a_linear_ramp_away_from_the_borders():
    """Keys' cubic kernel interpolates linear functions exactly (a known property of a = -0.5)."""
    ramp = np.tile(np.arange(16, dtype=np.float64), (16, 1))
    up = imresize(ramp, 4)
    x = (np.arange(64) + 1) / 4 + 0.5 * (1 - 1 / 4) - 1  # MATLAB's sample positions, 0-based
    np.testing.assert_allclose(up[8, 8:-8], x[8:-8], atol=1e-12)


def test_antialiasing_lowpasses_a_checkerboard():
    board = (np.indices((32, 32)).sum(axis=0) % 2).astype(np.float64)
    np.testing.assert_allclose(imresize(board, 0.5)[2:-2, 2:-2], 0.5, atol=1e-12)
    # On white noise the widened kernel averages twice as many samples per axis (std ratio ~0.66).
    noise = np.random.default_rng(1).random((64, 64))
    assert imresize(noise, 0.5).std() < 0.7 * imresize(noise, 0.5, antialiasing=False).std()


@pytest.mark.parametrize("scale", [0.5, 0.25, 0.125, 2, 4, 8])
def test_tensorflow_twin_matches_numpy(scale):
    rng = np.random.default_rng(0)
    image = rng.random((2, 24, 16, 3))
    ours = imresize_tf(image, scale).numpy()
    for i in range(2):
        np.testing.assert_allclose(ours[i], imresize(image[i], scale), atol=1e-10)
