"""MATLAB-compatible bicubic `imresize`: the resize that made every SR benchmark's LR images.

Port of the algorithm of MATLAB's `imresize(A, scale, 'bicubic')` (default
antialiasing): for each output sample, a Keys cubic kernel (a = -0.5) that is
widened by 1/scale when downscaling (so it low-passes), normalised weights,
out-of-range taps mirrored with MATLAB's symmetric rule (edge repeated), and
the dimension with the smaller scale processed first. Output size is
ceil(scale * size). Other resamplers (PIL, tf.image) differ by several grey
levels and shift PSNR by tenths of a dB, so benchmarks must use this one.
"""

import functools
import math

import numpy as np
import tensorflow as tf


def _cubic(x):
    """Keys cubic convolution kernel with a = -0.5 (MATLAB's `cubic`)."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2)))


@functools.lru_cache(maxsize=64)
def resize_weights(in_length, out_length, scale, antialiasing=True):
    """Dense (out_length, in_length) matrix W with `out = W @ in` along one axis.

    Mirrors MATLAB's `contributions()`: taps outside [0, in_length) are folded
    back symmetrically (index -1 -> 0, in_length -> in_length - 1).
    """
    kernel_width = 4.0
    if scale < 1 and antialiasing:
        kernel = lambda x: scale * _cubic(scale * x)  # noqa: E731
        kernel_width = kernel_width / scale
    else:
        kernel = _cubic
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)  # 1-based input coordinate
    left = np.floor(u - kernel_width / 2.0)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps)[None, :]  # 1-based
    weights = kernel(u[:, None] - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # MATLAB's symmetric fold: aux = [1:n, n:-1:1]; idx = aux(mod(idx - 1, 2n) + 1).
    period = 2 * in_length
    folded = np.mod(indices.astype(np.int64) - 1, period)
    folded = np.where(folded >= in_length, period - 1 - folded, folded)
    matrix = np.zeros((out_length, in_length))
    np.add.at(matrix, (np.repeat(np.arange(out_length), taps), folded.ravel()), weights.ravel())
    matrix.setflags(write=False)
    return matrix


def round_half_away(values):
    """Round like MATLAB (halves away from zero), not like numpy (halves to even).

    Exact halves are common after the first pass over uint8 images, where
    the difference is visible: numpy's rounding flips 248.5 to 248.
    """
    return np.sign(values) * np.floor(np.abs(values) + 0.5)


def _output_size(size, scale):
    return int(math.ceil(size * scale - 1e-9))


def _plan(shape, scale, output_shape):
    """Per-axis (scale, out size) and MATLAB's processing order (smaller scale first)."""
    in_h, in_w = shape
    if output_shape is not None:
        out_h, out_w = output_shape
        scales = (out_h / in_h, out_w / in_w)
    else:
        scales = (scale, scale) if np.isscalar(scale) else tuple(scale)
        out_h, out_w = _output_size(in_h, scales[0]), _output_size(in_w, scales[1])
    order = sorted(range(2), key=lambda d: scales[d])  # stable: rows first on ties
    return scales, (out_h, out_w), order


def imresize(image, scale=None, output_shape=None, antialiasing=True, round_uint8=False):
    """Resize an (H, W) or (H, W, C) array like MATLAB's bicubic `imresize`.

    `scale` is a number (0.25, 2, ...) or a (rows, cols) pair; alternatively
    give `output_shape` (H', W'). Works in float64 and returns float64 in the
    input's value range (so [0, 1] stays [0, 1], [0, 255] stays [0, 255]).
    `round_uint8=True` reproduces MATLAB on a uint8 image, which rounds and
    clips to 0..255 after each of the two 1-D passes (input must be 0..255);
    that is how the benchmark LR images were made.
    """
    if scale is None and output_shape is None:
        raise ValueError("imresize needs scale or output_shape")
    array = np.asarray(image, dtype=np.float64)
    if array.ndim not in (2, 3):
        raise ValueError(f"imresize expects (H, W) or (H, W, C), got shape {array.shape}")
    scales, out_shape, order = _plan(array.shape[:2], scale, output_shape)
    for axis in order:
        weights = resize_weights(array.shape[axis], out_shape[axis], float(scales[axis]), antialiasing)
        array = np.tensordot(weights, array, axes=([1], [axis]))
        array = np.moveaxis(array, 0, axis)
        if round_uint8:
            array = round_half_away(np.clip(array, 0, 255))
    return array


def imresize_tf(images, scale, antialiasing=True):
    """TensorFlow twin of `imresize` for an NHWC batch with a static height and width.

    The resize is two matrix products with the same weights, so it is
    differentiable and runs in graph mode; values are not rounded.
    """
    images = tf.convert_to_tensor(images)
    height, width = images.shape[1], images.shape[2]
    if height is None or width is None:
        raise ValueError("imresize_tf needs a static height and width (got an unknown spatial shape)")
    scales, out_shape, order = _plan((height, width), scale, None)
    for axis in order:
        w = tf.constant(resize_weights((height, width)[axis], out_shape[axis], float(scales[axis]), antialiasing),
                        dtype=images.dtype)
        if axis == 0:
            images = tf.einsum("oh,nhwc->nowc", w, images)
        else:
            images = tf.einsum("ow,nhwc->nhoc", w, images)
    return images
