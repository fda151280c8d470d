"""MATLAB `rgb2ycbcr` luma (ITU-R BT.601, studio range), the channel SR papers score on.

Y = 16 + 65.481 R + 128.553 G + 24.966 B for RGB in [0, 1], so Y is in [16, 235].
Full-range luma (0.299 R + 0.587 G + 0.114 B) reads about 1.3 dB lower in PSNR;
it is not what published tables use.
"""

import numpy as np
import tensorflow as tf

_Y_WEIGHTS = (65.481, 128.553, 24.966)
_Y_OFFSET = 16.0


def rgb_to_y(rgb):
    """Studio-range Y in [16, 235] (float64) of RGB values in [0, 1], shape (..., 3) -> (...)."""
    rgb = np.asarray(rgb, dtype=np.float64)
    if rgb.shape[-1] != 3:
        raise ValueError(f"rgb_to_y expects 3 channels in the last axis, got shape {rgb.shape}")
    return _Y_OFFSET + rgb @ np.array(_Y_WEIGHTS)


def rgb_to_y_tf(rgb):
    """TensorFlow twin of `rgb_to_y` (keeps the input's float dtype); (..., 3) -> (..., 1)."""
    rgb = tf.convert_to_tensor(rgb)
    if not rgb.dtype.is_floating:
        rgb = tf.cast(rgb, "float32")
    weights = tf.constant(_Y_WEIGHTS, dtype=rgb.dtype)
    return _Y_OFFSET + tf.reduce_sum(rgb * weights, axis=-1, keepdims=True)
