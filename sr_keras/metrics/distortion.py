"""Distortion metrics under the SR benchmark convention: PSNR and SSIM on MATLAB luma.

Convention (the one published tables use): Y of MATLAB `rgb2ycbcr` (studio
range, 16..235) from RGB in [0, 1], `shave` pixels (the scale) dropped at every
border, peak 255; SSIM with an 11x11 Gaussian window (sigma 1.5), K1 = 0.01,
K2 = 0.03 and 'valid' filtering, averaged over the map (Wang et al. 2004).

Numpy functions are the reference for scripts and tests; the `*_tf` twins and
the Keras metrics compute the same numbers in graph mode for `model.fit`.
"""

import keras
import numpy as np
import tensorflow as tf

from sr_keras.ops.color import rgb_to_y, rgb_to_y_tf

PEAK = 255.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _shave(array, shave):
    if shave == 0:
        return array
    if array.shape[0] <= 2 * shave or array.shape[1] <= 2 * shave:
        raise ValueError(f"image of size {array.shape[:2]} is too small to shave {shave} pixels per border")
    return array[shave:-shave, shave:-shave]


def _luma_pair(reference, test, shave):
    reference, test = np.asarray(reference), np.asarray(test)
    if reference.shape != test.shape:
        raise ValueError(f"images differ in shape: reference {reference.shape} vs test {test.shape}")
    return _shave(rgb_to_y(reference), shave), _shave(rgb_to_y(test), shave)


def psnr_y(reference, test, shave=0):
    """PSNR (dB) between two RGB images in [0, 1] (H, W, 3) on MATLAB luma; inf if identical."""
    y_ref, y_test = _luma_pair(reference, test, shave)
    mse = np.mean((y_ref - y_test) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(PEAK ** 2 / mse))


def gaussian_window(size=SSIM_WINDOW, sigma=SSIM_SIGMA):
    """MATLAB `fspecial('gaussian', size, sigma)`: a normalised 2-D Gaussian."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2.0 * sigma ** 2))
    return g / g.sum()


def _filter_valid(image, window):
    from scipy.signal import correlate2d  # about a second to import; only the NumPy SSIM needs it

    return correlate2d(image, window, mode="valid")


def ssim_luma(y_ref, y_test):
    """SSIM of two single-channel images in 0..255 (float), 'valid' Gaussian filtering."""
    window = gaussian_window()
    if min(y_ref.shape) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {y_ref.shape}")
    c1, c2 = (SSIM_K1 * PEAK) ** 2, (SSIM_K2 * PEAK) ** 2
    mu_x, mu_y = _filter_valid(y_ref, window), _filter_valid(y_test, window)
    sigma_xx = _filter_valid(y_ref * y_ref, window) - mu_x ** 2
    sigma_yy = _filter_valid(y_test * y_test, window) - mu_y ** 2
    sigma_xy = _filter_valid(y_ref * y_test, window) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)) / (
        (mu_x ** 2 + mu_y ** 2 + c1) * (sigma_xx + sigma_yy + c2))
    return float(ssim_map.mean())


def ssim_y(reference, test, shave=0):
    """SSIM between two RGB images in [0, 1] (H, W, 3) on MATLAB luma."""
    y_ref, y_test = _luma_pair(reference, test, shave)
    return ssim_luma(y_ref, y_test)


# --- TensorFlow (graph mode) -------------------------------------------------------------

def _prepare_tf(y_true, y_pred, shave):
    y_pred = tf.convert_to_tensor(y_pred)
    dtype = y_pred.dtype if y_pred.dtype.is_floating and y_pred.dtype != tf.float16 else tf.float32
    y_true = tf.cast(y_true, dtype)
    y_pred = tf.clip_by_value(tf.cast(y_pred, dtype), 0.0, 1.0)
    y_true, y_pred = rgb_to_y_tf(y_true), rgb_to_y_tf(y_pred)
    if shave:
        y_true = y_true[:, shave:-shave, shave:-shave, :]
        y_pred = y_pred[:, shave:-shave, shave:-shave, :]
    return y_true, y_pred


def psnr_y_tf(y_true, y_pred, shave=0):
    """Per-image PSNR-Y (N,) of NHWC RGB batches in [0, 1]; predictions are clipped to [0, 1]."""
    y_true, y_pred = _prepare_tf(y_true, y_pred, shave)
    mse = tf.reduce_mean(tf.square(y_true - y_pred), axis=[1, 2, 3])
    return 10.0 * tf.math.log(PEAK ** 2 / mse) / tf.math.log(tf.constant(10.0, mse.dtype))


def ssim_y_tf(y_true, y_pred, shave=0):
    """Per-image SSIM-Y (N,) of NHWC RGB batches in [0, 1]; predictions are clipped to [0, 1]."""
    y_true, y_pred = _prepare_tf(y_true, y_pred, shave)
    window = tf.constant(gaussian_window()[:, :, None, None], dtype=y_true.dtype)

    def filt(x):
        return tf.nn.conv2d(x, window, strides=1, padding="VALID")

    c1, c2 = (SSIM_K1 * PEAK) ** 2, (SSIM_K2 * PEAK) ** 2
    mu_x, mu_y = filt(y_true), filt(y_pred)
    sigma_xx = filt(y_true * y_true) - mu_x ** 2
    sigma_yy = filt(y_pred * y_pred) - mu_y ** 2
    sigma_xy = filt(y_true * y_pred) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)) / (
        (mu_x ** 2 + mu_y ** 2 + c1) * (sigma_xx + sigma_yy + c2))
    return tf.reduce_mean(ssim_map, axis=[1, 2, 3])


class _PerImageMean(keras.metrics.Metric):
    """Mean of a per-image score over every image seen (not a mean of batch means)."""

    def __init__(self, shave=0, name=None, dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.shave = int(shave)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def _score(self, y_true, y_pred):
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None):
        scores = tf.cast(self._score(y_true, y_pred), self.dtype)
        if sample_weight is None:
            weights = tf.ones_like(scores)
        else:
            weights = tf.broadcast_to(tf.reshape(tf.cast(sample_weight, self.dtype), [-1]), tf.shape(scores))
        self.total.assign_add(tf.reduce_sum(scores * weights))
        self.count.assign_add(tf.reduce_sum(weights))

    def result(self):
        return self.total / keras.ops.maximum(self.count, 1e-12)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "shave": self.shave}


@keras.saving.register_keras_serializable(package="sr_keras")
class PSNRY(_PerImageMean):
    """Mean PSNR-Y (dB) per image, benchmark convention (set `shave` to the scale)."""

    def __init__(self, shave=0, name="psnr_y", dtype=None, **kwargs):
        super().__init__(shave=shave, name=name, dtype=dtype, **kwargs)

    def _score(self, y_true, y_pred):
        return psnr_y_tf(y_true, y_pred, self.shave)


@keras.saving.register_keras_serializable(package="sr_keras")
class SSIMY(_PerImageMean):
    """Mean SSIM-Y per image, benchmark convention (set `shave` to the scale)."""

    def __init__(self, shave=0, name="ssim_y", dtype=None, **kwargs):
        super().__init__(shave=shave, name=name, dtype=dtype, **kwargs)

    def _score(self, y_true, y_pred):
        return ssim_y_tf(y_true, y_pred, self.shave)
