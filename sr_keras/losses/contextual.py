"""The contextual loss (Mechrez, Talmi, Zelnik-Manor, ECCV 2018), for non-aligned feature statistics.

"The Contextual Loss for Image Transformation with Non-Aligned Data": treat
each image's feature map as a set of vectors; CX is high when every target
feature has a generated feature that is much closer to it than any other.
It compares feature *distributions*, not positions, so it rewards realistic
texture without asking for the exact ground-truth pixels.

For generated features x_i and target features y_j (per image):
  d_ij  = 1 - cos(x_i - mu, y_j - mu),  mu = mean of the target features
  d~_ij = d_ij / (min_k d_ik + eps)            (relative to x_i's nearest target)
  w_ij  = exp((1 - d~_ij) / h)                 (h = band_width)
  CX_ij = w_ij / sum_k w_ik
  CX    = mean_j max_i CX_ij,      loss = -log(CX)
(The authors' code uses (1 - cos)/2; the relative normalisation makes the
two nearly identical, differing only through eps.)

Memory: the pairwise matrices are (N_pred x N_target) per image and per
feature layer. `max_positions` caps N: a feature map with more positions is
represented by `max_positions` positions drawn at random without
replacement, independently for the prediction and the target (CX does not
pair positions, so independent subsets are an unbiased-in-spirit estimate of
the full set). With the default 1024 each matrix is 1024^2 float32 = 4 MiB
per image per layer; forward plus backward keep about six of them, so
~24 MiB x batch x layers (batch 16, two layers: ~0.8 GiB).
"""

import keras
import tensorflow as tf

from sr_keras.losses.reconstruction import as_levels

_PACKAGE = "sr_keras"


def _flatten(features):
    features = tf.cast(features, tf.float32)
    shape = tf.shape(features)
    return tf.reshape(features, [shape[0], -1, features.shape[-1] or shape[-1]])


def _sample_positions(features, max_positions, seed):
    """(B, N, C) -> (B, min(N, max_positions), C), positions drawn without replacement per image."""
    n = features.shape[1]
    if n is not None and n <= max_positions:
        return features
    shape = tf.shape(features)
    keep = tf.minimum(shape[1], max_positions)
    scores = tf.random.uniform(shape[:2], seed=seed)
    indices = tf.math.top_k(scores, k=keep, sorted=False).indices
    return tf.gather(features, indices, batch_dims=1)


def contextual_similarity(pred, target, band_width=0.5, eps=1e-5):
    """CX per image for flattened features pred (B, N, C) and target (B, M, C); returns (B,)."""
    mu = tf.reduce_mean(target, axis=1, keepdims=True)
    x = tf.math.l2_normalize(pred - mu, axis=-1)
    y = tf.math.l2_normalize(target - mu, axis=-1)
    distance = 1.0 - tf.matmul(x, y, transpose_b=True)                # (B, N, M): [i pred, j target]
    relative = distance / (tf.reduce_min(distance, axis=-1, keepdims=True) + eps)
    cx = tf.nn.softmax((1.0 - relative) / band_width, axis=-1)       # normalise over targets k
    return tf.reduce_mean(tf.reduce_max(cx, axis=1), axis=-1)         # max over pred i, mean over j


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ContextualLoss(keras.losses.Loss):
    """-log CX between `y_true` and `y_pred`, summed over the feature layers; one value per image.

    `features`: a `VGGFeatures` (images in [0, 1] -> feature maps), or None to
    compare the inputs themselves as feature maps (N, H, W, C).
    `max_positions`: cap on positions per feature map (see the module doc for
    the memory it implies); `seed`: op seed of the position sampling.
    """

    def __init__(self, features=None, band_width=0.5, max_positions=1024, seed=None, eps=1e-5,
                 name="contextual_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if band_width <= 0:
            raise ValueError(f"band_width must be > 0, got {band_width}")
        if max_positions < 1:
            raise ValueError(f"max_positions must be >= 1, got {max_positions}")
        self.features = features
        self.band_width = float(band_width)
        self.max_positions = int(max_positions)
        self.seed = seed
        self.eps = float(eps)

    def call(self, y_true, y_pred):
        if self.features is not None:
            true_maps, pred_maps = self.features(y_true), self.features(y_pred)
        else:
            true_maps, pred_maps = as_levels(y_true), as_levels(y_pred)
        total = 0.0
        for index, (t, p) in enumerate(zip(true_maps, pred_maps, strict=True)):
            seed = None if self.seed is None else self.seed + 2 * index
            t = _sample_positions(_flatten(t), self.max_positions, seed)
            p = _sample_positions(_flatten(p), self.max_positions, None if seed is None else seed + 1)
            cx = contextual_similarity(p, t, self.band_width, self.eps)
            total += -tf.math.log(tf.maximum(cx, 1e-12))
        return total

    def get_config(self):
        return {
            **super().get_config(),
            "features": None if self.features is None else keras.saving.serialize_keras_object(self.features),
            "band_width": self.band_width,
            "max_positions": self.max_positions,
            "seed": self.seed,
            "eps": self.eps,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("features") is not None:
            config["features"] = keras.saving.deserialize_keras_object(config["features"])
        return cls(**config)


def contextual_pyramid_loss(cx, predicted, target):
    """Sum over pyramid levels of `cx(target_l, predicted_l)` (each already averaged over the batch)."""
    predicted, target = as_levels(predicted, "predicted"), as_levels(target, "target")
    if len(predicted) != len(target):
        raise ValueError(f"predicted has {len(predicted)} levels but target has {len(target)}")
    return tf.add_n([cx(t, p) for p, t in zip(predicted, target, strict=True)])
