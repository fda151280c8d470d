"""Frozen VGG16 feature extractor for perceptual and contextual losses.

Weights come from an explicit `.npz` (layout of `vgg16_imagenet_conv.npz`:
keys `block{b}_conv{c}/kernel` HWIO and `/bias`, torchvision weights with
torch-style input normalisation) or from Keras' ImageNet VGG16 download
(`weights="imagenet"`, caffe-style BGR preprocessing). Only the trunk up to
the deepest requested layer is built, so `block2_conv2` costs two blocks.
"""

import os

import keras
import numpy as np
import tensorflow as tf

from sr_keras.serialization import PACKAGE

# (block, convs, width) of VGG16.
_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))
VGG16_LAYERS = tuple(f"block{b}_conv{c}" for b, n, _ in _BLOCKS for c in range(1, n + 1))
_WIDTH = {f"block{b}_conv{c}": w for b, n, w in _BLOCKS for c in range(1, n + 1)}

_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package=PACKAGE)
class VGGFeatures(keras.layers.Layer):
    """RGB images in [0, 1] (N, H, W, 3) -> list of VGG16 feature maps (after ReLU), one per `layers` entry.

    `weights`: "imagenet" (Keras download, needs network once), a path to an
    `.npz` as described in the module doc, or None (random, for tests).
    The weights are non-trainable variables, so the layer works inside
    `tf.function` and, built under `strategy.scope()`, on every replica.
    """

    def __init__(self, layers=("block2_conv2", "block3_conv3"), weights="imagenet", **kwargs):
        super().__init__(**kwargs)
        if isinstance(layers, str):
            layers = (layers,)
        unknown = [name for name in layers if name not in VGG16_LAYERS]
        if unknown or not layers:
            raise ValueError(f"unknown VGG16 layer(s) {unknown or list(layers)}; choose from {list(VGG16_LAYERS)}")
        self.layer_names = tuple(layers)
        self.weights_source = None if weights is None else os.fspath(weights)
        self.trainable = False
        depth = max(VGG16_LAYERS.index(name) for name in self.layer_names) + 1
        self.conv_names = VGG16_LAYERS[:depth]
        self.preprocessing = "caffe" if self.weights_source == "imagenet" else "torch"
        self.kernels, self.biases = [], []
        previous = 3
        for name in self.conv_names:
            self.kernels.append(self.add_weight(name=f"{name}_kernel", shape=(3, 3, previous, _WIDTH[name]),
                                                initializer="glorot_uniform", trainable=False))
            self.biases.append(self.add_weight(name=f"{name}_bias", shape=(_WIDTH[name],),
                                               initializer="zeros", trainable=False))
            previous = _WIDTH[name]
        if self.weights_source is not None:
            self._assign(self._load(self.weights_source))
        self.built = True

    # -- weights ---------------------------------------------------------------

    def _load(self, source):
        if source == "imagenet":
            return _imagenet_arrays(self.conv_names)
        return _npz_arrays(source, self.conv_names)

    def _assign(self, arrays):
        for name, kernel, bias in zip(self.conv_names, self.kernels, self.biases, strict=True):
            k, b = arrays[name]
            kernel.assign(np.asarray(k, np.float32))
            bias.assign(np.asarray(b, np.float32))

    # -- forward ---------------------------------------------------------------

    def _preprocess(self, images):
        if self.preprocessing == "torch":
            return (images - tf.constant(_TORCH_MEAN, images.dtype)) / tf.constant(_TORCH_STD, images.dtype)
        bgr = tf.reverse(images, axis=[-1]) * 255.0
        return bgr - tf.constant(_CAFFE_MEAN_BGR, images.dtype)

    def call(self, images):
        x = self._preprocess(tf.convert_to_tensor(images, self.compute_dtype))
        wanted = {name: None for name in self.layer_names}
        for name, kernel, bias in zip(self.conv_names, self.kernels, self.biases, strict=True):
            if name.endswith("_conv1") and not name.startswith("block1"):
                x = tf.nn.max_pool2d(x, 2, 2, "VALID")
            kernel = tf.cast(kernel, x.dtype)
            x = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, "SAME"), tf.cast(bias, x.dtype)))
            if name in wanted:
                wanted[name] = x
        return [wanted[name] for name in self.layer_names]

    def compute_output_spec(self, images):
        return [keras.KerasTensor((images.shape[0], None, None, _WIDTH[n]), self.compute_dtype)
                for n in self.layer_names]

    def get_config(self):
        return {**super().get_config(), "layers": list(self.layer_names), "weights": self.weights_source}


def _npz_arrays(path, names):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: VGG16 weights file not found (expected an .npz with keys "
                                "'block1_conv1/kernel', 'block1_conv1/bias', ...)")
    try:
        data = np.load(path)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable .npz ({error})") from error
    arrays = {}
    with data:
        for name in names:
            for part in ("kernel", "bias"):
                if f"{name}/{part}" not in data.files:
                    raise ValueError(f"{path}: missing array '{name}/{part}' (has {sorted(data.files)[:4]} ...)")
            kernel, bias = data[f"{name}/kernel"], data[f"{name}/bias"]
            if kernel.shape[:2] != (3, 3) or kernel.shape[-1] != _WIDTH[name] or bias.shape != (_WIDTH[name],):
                raise ValueError(f"{path}: '{name}' has kernel {kernel.shape} and bias {bias.shape}; expected "
                                 f"(3, 3, in, {_WIDTH[name]}) HWIO and ({_WIDTH[name]},)")
            arrays[name] = (kernel, bias)
    return arrays


def _imagenet_arrays(names):
    try:
        model = keras.applications.VGG16(include_top=False, weights="imagenet", input_shape=(None, None, 3))
    except Exception as error:  # the download raises many types (URLError, OSError, HTTP errors)
        raise RuntimeError(
            "could not fetch the Keras ImageNet VGG16 weights (no network?); pass weights='path/to/"
            f"vgg16_imagenet_conv.npz' instead (keys 'block1_conv1/kernel', ...). Cause: {error}"
        ) from error
    return {name: tuple(model.get_layer(name).get_weights()) for name in names}
