"""PSNR/SSIM against slow direct formulas, the Keras metrics in fit(), LPIPS and NIQE reference checks."""

import math

import keras
import numpy as np
import pytest

from sr_keras.io.images import read_image
from sr_keras.metrics import (
    PSNRY,
    SSIMY,
    LPIPSWeightsError,
    NIQEParamsError,
    load_lpips,
    load_niqe_params,
    lpips_distance,
    niqe,
    psnr_y,
    psnr_y_tf,
    ssim_y,
    ssim_y_tf,
)
from sr_keras.metrics.lpips import convert_torch_state_dicts


def _pair(shape=(30, 26, 3), seed=0):
    rng = np.random.default_rng(seed)
    a = rng.random(shape)
    b = np.clip(a + rng.normal(0, 0.05, shape), 0, 1)
    return a, b


def _slow_y(rgb):
    """MATLAB rgb2ycbcr luma, pixel by pixel."""
    h, w, _ = rgb.shape
    y = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            r, g, b = rgb[i, j]
            y[i, j] = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    return y


def _slow_psnr(a, b, shave):
    ya, yb = _slow_y(a), _slow_y(b)
    total, n = 0.0, 0
    for i in range(shave, a.shape[0] - shave):
        for j in range(shave, a.shape[1] - shave):
            total += (ya[i, j] - yb[i, j]) ** 2
            n += 1
    return 10 * math.log10(255 ** 2 / (total / n))


def _slow_ssim(a, b, shave):
    """Wang et al. SSIM with an explicit 11x11 Gaussian (sigma 1.5) at every 'valid' position."""
    ya, yb = _slow_y(a)[shave:a.shape[0] - shave, shave:a.shape[1] - shave], \
        _slow_y(b)[shave:b.shape[0] - shave, shave:b.shape[1] - shave]
    g = [[math.exp(-((i - 5) ** 2 + (j - 5) ** 2) / (2 * 1.5 ** 2)) for j in range(11)] for i in range(11)]
    norm = sum(map(sum, g))
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for top in range(ya.shape[0] - 10):
        for left in range(ya.shape[1] - 10):
            mx = my = sxx = syy = sxy = 0.0
            for i in range(11):
                for j in range(11):
                    w = g[i][j] / norm
                    x, y = ya[top + i, left + j], yb[top + i, left + j]
                    mx += w * x
                    my += w * y
                    sxx += w * x * x
                    syy += w * y * y
                    sxy += w * x * y
            vx, vy, cxy = sxx - mx * mx, syy - my * my, sxy - mx * my
            values.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2)))
    return sum(values) / len(values)


@pytest.mark.parametrize("shave", [0, 2, 4])
def test_psnr_y_matches_the_direct_formula(shave):
    a, b = _pair()
    assert psnr_y(a, b, shave) == pytest.approx(_slow_psnr(a, b, shave), abs=1e-9)
    assert psnr_y(a, a, shave) == math.inf


def test_full_range_luma_would_read_differently():
    """Full-range luma spans 255 levels instead of 219, so it reads 20 log10(255/219) = 1.32 dB low."""
    a, b = _pair()
    full = lambda x: 255 * (x @ np.array([0.299, 0.587, 0.114]))  # noqa: E731
    psnr_full = 10 * np.log10(255 ** 2 / np.mean((full(a) - full(b)) ** 2))
    assert psnr_y(a, b) - psnr_full == pytest.approx(20 * np.log10(255 / 219), abs=0.05)


@pytest.mark.parametrize("shave", [0, 3])
def test_ssim_y_matches_the_direct_formula(shave):
    a, b = _pair(shape=(24, 22, 3))
    assert ssim_y(a, b, shave) == pytest.approx(_slow_ssim(a, b, shave), abs=1e-9)
    assert ssim_y(a, a, shave) == pytest.approx(1.0)


def test_ssim_y_matches_scikit_image_gaussian_ssim():
    from skimage.metrics import structural_similarity

    from sr_keras.ops.color import rgb_to_y

    a, b = _pair(shape=(40, 36, 3), seed=3)
    expected = structural_similarity(rgb_to_y(a), rgb_to_y(b), data_range=255, gaussian_weights=True,
                                     sigma=1.5, use_sample_covariance=False)
    assert ssim_y(a, b) == pytest.approx(expected, abs=1e-6)


def test_shape_mismatch_and_tiny_images_are_rejected():
    a, b = _pair()
    with pytest.raises(ValueError, match="differ in shape"):
        psnr_y(a, b[:-1])
    with pytest.raises(ValueError, match="too small to shave"):
        psnr_y(a[:8], b[:8], shave=4)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim_y(a[:10], b[:10])


def test_tensorflow_twins_match_numpy_and_clip_predictions():
    batch = [_pair(seed=s) for s in range(3)]
    a = np.stack([p[0] for p in batch]).astype("float32")
    b = np.stack([p[1] for p in batch]).astype("float32")
    pairs = list(zip(a, b, strict=True))
    np.testing.assert_allclose(psnr_y_tf(a, b, 2).numpy(), [psnr_y(x, y, 2) for x, y in pairs], atol=2e-3)
    np.testing.assert_allclose(ssim_y_tf(a, b, 2).numpy(), [ssim_y(x, y, 2) for x, y in pairs], atol=1e-4)
    over = b + 0.5  # out-of-range predictions are scored as the clipped image a PNG would hold
    np.testing.assert_allclose(psnr_y_tf(a, over).numpy(),
                               [psnr_y(x, np.clip(y, 0, 1)) for x, y in zip(a, over, strict=True)], atol=2e-3)


def test_keras_metrics_average_per_image_and_round_trip():
    batch = [_pair(seed=s) for s in range(3)]
    a = np.stack([p[0] for p in batch]).astype("float32")
    b = np.stack([p[1] for p in batch]).astype("float32")
    metric = PSNRY(shave=2)
    metric.update_state(a[:1], b[:1])
    metric.update_state(a[1:], b[1:])  # unequal batches: the mean is still over images
    expected = np.mean([psnr_y(x, y, 2) for x, y in zip(a, b, strict=True)])
    assert float(metric.result()) == pytest.approx(expected, abs=2e-3)
    metric.reset_state()
    assert float(metric.result()) == 0.0
    clone = keras.metrics.deserialize(keras.metrics.serialize(SSIMY(shave=3, name="val_ssim")))
    assert isinstance(clone, SSIMY) and clone.shave == 3 and clone.name == "val_ssim"


def test_keras_metrics_work_in_fit_validation(tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((4, 16, 16, 3)).astype("float32")
    model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(3, 3, padding="same")])
    model.compile("adam", "mse", metrics=[PSNRY(shave=1), SSIMY(shave=1)])
    history = model.fit(x, x, validation_data=(x, x), epochs=1, batch_size=2, verbose=0)
    pred = model.predict(x, verbose=0)
    expected = np.mean([psnr_y(t, np.clip(p, 0, 1), 1) for t, p in zip(x, pred, strict=True)])
    assert history.history["val_psnr_y"][0] == pytest.approx(expected, abs=0.02)
    expected = np.mean([ssim_y(t, np.clip(p, 0, 1), 1) for t, p in zip(x, pred, strict=True)])
    assert history.history["val_ssim_y"][0] == pytest.approx(expected, abs=1e-3)
    model.save(tmp_path / "m.keras")
    keras.models.load_model(tmp_path / "m.keras")


# --- LPIPS ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lpips_model(shared_dir):
    return load_lpips(shared_dir / "weights" / "lpips_alex_v0.1.npz")


def test_lpips_reproduces_the_reference_distances(lpips_model, shared_dir):
    folder = shared_dir / "weights" / "lpips_check"
    ref, p0, p1 = (read_image(folder / f"{n}.png").rgb for n in ("ex_ref", "ex_p0", "ex_p1"))
    assert lpips_distance(lpips_model, ref, p0) == pytest.approx(0.722, abs=1e-3)
    assert lpips_distance(lpips_model, ref, p1) == pytest.approx(0.138, abs=1e-3)
    assert lpips_distance(lpips_model, ref, ref) == pytest.approx(0.0, abs=1e-7)
    assert lpips_distance(lpips_model, p0, ref) == pytest.approx(lpips_distance(lpips_model, ref, p0), abs=1e-6)


def test_lpips_batches_and_survives_a_keras_round_trip(lpips_model, shared_dir, tmp_path):
    folder = shared_dir / "weights" / "lpips_check"
    ref, p0, p1 = (read_image(folder / f"{n}.png").rgb[None] for n in ("ex_ref", "ex_p0", "ex_p1"))
    batch = lpips_model([np.concatenate([ref, ref]), np.concatenate([p0, p1])]).numpy()
    np.testing.assert_allclose(batch, [0.722, 0.138], atol=1e-3)
    lpips_model.save(tmp_path / "lpips.keras")
    again = keras.models.load_model(tmp_path / "lpips.keras")
    np.testing.assert_allclose(again([np.concatenate([ref, ref]), np.concatenate([p0, p1])]).numpy(), batch,
                               atol=1e-6)


def test_lpips_weight_errors_name_the_file_and_key(tmp_path, shared_dir):
    with pytest.raises(LPIPSWeightsError, match="no such LPIPS weights file"):
        load_lpips(tmp_path / "absent.npz")
    source = dict(np.load(shared_dir / "weights" / "lpips_alex_v0.1.npz"))
    source.pop("lin3/weight")
    np.savez(tmp_path / "bad.npz", **source)
    with pytest.raises(LPIPSWeightsError, match=r"bad\.npz: missing array 'lin3/weight'"):
        load_lpips(tmp_path / "bad.npz")


def test_torch_state_dicts_map_onto_our_layout(shared_dir):
    """The conversion of the official .pth files (run with torch) is a pure layout mapping."""
    ours = np.load(shared_dir / "weights" / "lpips_alex_v0.1.npz")
    alexnet = {}
    for i, index in enumerate([0, 3, 6, 8, 10], start=1):
        alexnet[f"features.{index}.weight"] = np.transpose(ours[f"conv{i}/kernel"], (3, 2, 0, 1))
        alexnet[f"features.{index}.bias"] = ours[f"conv{i}/bias"]
    lin = {f"lin{i}.model.1.weight": ours[f"lin{i + 1}/weight"].reshape(1, -1, 1, 1) for i in range(5)}
    converted = convert_torch_state_dicts(alexnet, lin)
    assert set(converted) == set(ours.files)
    for key in ours.files:
        np.testing.assert_array_equal(converted[key], ours[key])


# --- NIQE -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def niqe_params(shared_dir):
    return load_niqe_params(shared_dir / "weights" / "niqe_pris_params.npz")


def test_niqe_matches_matlab_on_baboon(niqe_params, shared_dir):
    baboon = read_image(shared_dir / "weights" / "niqe_check" / "baboon.png").rgb
    assert niqe(baboon, niqe_params) == pytest.approx(5.72957, abs=0.01)


def test_niqe_prefers_natural_images_and_rejects_tiny_ones(niqe_params, shared_dir):
    baboon = read_image(shared_dir / "weights" / "niqe_check" / "baboon.png").rgb
    noisy = np.clip(baboon + np.random.default_rng(0).normal(0, 0.1, baboon.shape), 0, 1)
    assert niqe(noisy, niqe_params) > niqe(baboon, niqe_params) + 3
    with pytest.raises(ValueError, match="at least 96x96"):
        niqe(baboon[:100, :100], niqe_params, shave=4)


def test_niqe_params_errors(tmp_path):
    with pytest.raises(NIQEParamsError, match="no such NIQE parameter file"):
        load_niqe_params(tmp_path / "absent.npz")
    np.savez(tmp_path / "bad.npz", mu_pris_param=np.zeros((1, 36)))
    with pytest.raises(NIQEParamsError, match=r"bad\.npz: missing \['cov_pris_param', 'gaussian_window'\]"):
        load_niqe_params(tmp_path / "bad.npz")


def test_niqe_of_a_flat_image_is_nan_not_an_error(niqe_params):
    assert math.isnan(niqe(np.full((100, 100, 3), 0.5), niqe_params))


def test_lpips_without_a_path_or_torch_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no converted weights cached
    monkeypatch.setitem(__import__("sys").modules, "torch", None)  # torch not installed
    with pytest.raises(LPIPSWeightsError, match=r"needs torch: `pip install -e '\.\[torch\]'`, or pass an npz"):
        load_lpips()
