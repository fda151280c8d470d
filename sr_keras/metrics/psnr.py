"""Per-image PSNR of a batch in graph mode: the validation metric of training (RGB or benchmark Y)."""

import tensorflow as tf

from sr_keras.metrics.distortion import psnr_y_tf


def psnr(predicted, target, shave=0, channel="rgb"):
    """Per-image PSNR in dB of [0, 1] images (prediction clipped), `shave` border pixels dropped.

    channel "y" is the benchmark convention (MATLAB studio-range luma, `sr_keras.metrics.distortion`).
    """
    if channel == "y":
        return psnr_y_tf(target, predicted, shave)
    if channel != "rgb":
        raise ValueError(f"channel must be 'rgb' or 'y', got {channel!r}")
    predicted = tf.clip_by_value(tf.cast(predicted, tf.float32), 0.0, 1.0)
    target = tf.cast(target, tf.float32)
    if shave:
        predicted = predicted[:, shave:-shave, shave:-shave, :]
        target = target[:, shave:-shave, shave:-shave, :]
    mse = tf.reduce_mean(tf.square(predicted - target), axis=[1, 2, 3])
    return 10.0 * tf.math.log(1.0 / tf.maximum(mse, 1e-10)) / tf.math.log(10.0)
