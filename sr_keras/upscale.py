"""Upscale whole images with an `MGBPGenerator`, tile by tile, without seams.

Memory for the network is bounded by the tile, not the image: the LR image is
cut into overlapping tiles, each is run through the network, and neighbouring
tiles are cross-faded with raised-cosine weights that sum to exactly one.
Each tile's outer quarter-overlap (its least reliable pixels, which lack
context) gets weight zero, so with the default overlap the result matches the
untiled network to well under 1/255 everywhere.

Noise stays seamless too: the per-level noise maps are drawn once for the
whole padded image, exactly as the generator would draw them for a seed, and
every tile gets the slice under it. A seeded tiled run therefore reproduces
`generator(lr, noise_amplitude=a, seed=s)` on the whole image.
"""

import functools
import math
import weakref

import numpy as np
import tensorflow as tf

# LR pixels per tile side. 192 keeps the published 4x network under ~1.5 GB of
# activations per tile (see docs/upscale.md) at ~1.4x the untiled work.
DEFAULT_TILE = 192
# LR pixels shared by neighbouring tiles. The published 4x network's output
# changes by < 1e-4 once a missing-context edge is >= 16 LR px away, < 4e-3
# at 8 px; we discard overlap/4 = 8 px per tile edge and cross-fade over the
# middle overlap/2 = 16 px, so tiled and untiled agree to ~1e-4.
DEFAULT_OVERLAP = 32

class NoDefaultModel(RuntimeError):
    """The bundled model cannot be loaded (a broken installation); pass a model explicitly."""


@functools.lru_cache(maxsize=1)
def default_model():
    """The bundled 4x generator (`sr_keras.pretrained("x4")`), used when no model is given.

    Loaded once per process: repeated API calls reuse it (and its traced function).
    """
    from sr_keras.zoo import pretrained

    try:
        return pretrained("x4")
    except (FileNotFoundError, ValueError, OSError) as error:
        raise NoDefaultModel(f"{error}; pass --model MODEL.keras") from error


# -- tile layout ---------------------------------------------------------------


def tile_starts(size, tile, overlap):
    """Start offsets of tiles of length `tile` covering [0, size), evenly spread.

    Every pair of neighbours overlaps by at least `overlap`; the first tile
    starts at 0 and the last ends at `size`.
    """
    if size <= tile:
        return [0]
    stride = tile - overlap
    count = math.ceil((size - overlap) / stride)
    count = max(count, 2)
    return [round(i * (size - tile) / (count - 1)) for i in range(count)]


def _ramp(x, start, width):
    """sin^2 ramp from 0 to 1 over HR pixel centres x + 0.5 in [start, start + width)."""
    if width <= 0:
        return (x + 0.5 >= start).astype("float32")
    u = np.clip((x + 0.5 - start) / width, 0.0, 1.0)
    return (np.sin(0.5 * np.pi * u) ** 2).astype("float32")


def blend_weights(starts, tile, size, overlap, scale):
    """Per-tile 1-D HR weights that sum to one at every HR pixel.

    Between tiles i and i+1 the cross-fade is centred in their overlap and
    `overlap * scale / 2` HR px wide; outside it exactly one tile has weight 1.
    Since sin^2 + cos^2 = 1 no normalisation buffer is needed.
    """
    ends = [min(s + tile, size) for s in starts]
    width = overlap * scale / 2.0
    weights = []
    for i, (s, e) in enumerate(zip(starts, ends)):
        x = np.arange(s * scale, e * scale, dtype="float64")
        w = np.ones_like(x, dtype="float32")
        if i > 0:
            centre = scale * (starts[i] + ends[i - 1]) / 2.0
            w *= _ramp(x, centre - width / 2.0, width)
        if i + 1 < len(starts):
            centre = scale * (starts[i + 1] + ends[i]) / 2.0
            w *= 1.0 - _ramp(x, centre - width / 2.0, width)
        weights.append(w)
    return weights


# -- the network as one traced function ------------------------------------------

_RUNNERS = weakref.WeakKeyDictionary()


def _runner(model):
    """A tf.function of the model with a dynamic-shape signature: traced once, any tile size."""
    fn = _RUNNERS.get(model)
    if fn is None:
        model_ref = weakref.ref(model)  # a strong reference would keep the cache key alive
        spec = tf.TensorSpec((None, None, None, 1), tf.float32)

        @tf.function(
            input_signature=[
                tf.TensorSpec((None, None, None, 3), tf.float32),
                spec,
                [spec] * model.levels,
            ],
            reduce_retracing=True,
        )
        def fn(lr, amplitude, noise):
            generator = model_ref()
            return tf.cast(generator(lr, noise_amplitude=amplitude, noise=noise), tf.float32)

        _RUNNERS[model] = fn
    return fn


def _amplitude_map(noise_amplitude, batch, height, width):
    """Normalise a scalar, (N,), (H, W), (H, W, 1) or (N, H, W, 1) amplitude to (N, H, W, 1)."""
    a = np.asarray(noise_amplitude, dtype="float32")
    if a.ndim == 0:
        return None, np.full((batch,), float(a), "float32")
    if a.ndim == 1:
        if a.shape[0] not in (1, batch):
            raise ValueError(f"noise_amplitude has {a.shape[0]} values for {batch} images")
        return None, np.broadcast_to(a, (batch,)).astype("float32")
    if a.ndim == 2:
        a = a[None, :, :, None]
    elif a.ndim == 3:
        a = a[None] if a.shape[-1] == 1 else a[..., None]
    if a.ndim != 4 or a.shape[-1] != 1 or a.shape[1:3] != (height, width):
        raise ValueError(
            f"a per-pixel noise_amplitude must be (H, W[, 1]) or (N, H, W, 1) at the input size "
            f"{height}x{width}; got {np.shape(noise_amplitude)}"
        )
    return np.broadcast_to(a, (batch, height, width, 1)), None


def _check_model(model):
    for attribute in ("scale", "levels", "padding"):
        if not hasattr(model, attribute):
            raise TypeError(
                f"upscale needs an MGBPGenerator (or a model with .scale, .levels, .padding); "
                f"got {type(model).__name__}"
            )


def upscale(images, model=None, noise_amplitude=0.0, seed=None, tile=None, overlap=DEFAULT_OVERLAP,
            clip=True, on_tile=None):
    """Super-resolve an (H, W, C) image or (N, H, W, C) batch with values in [0, 1].

    * `model`: an `MGBPGenerator`; None uses the bundled 4x one (`default_model()`).

    * C = 3: RGB; C = 1: grey (run as replicated RGB, returned as the channel
      mean); C = 4 or 2: colour plus alpha, the alpha upscaled bicubically.
    * `noise_amplitude`: scalar, one per image (N,), or a per-pixel LR map
      (H, W), (H, W, 1) or (N, H, W, 1) with values in [0, 1].
    * `seed`: int for reproducible noise (None: a fresh random seed).
    * `tile`: LR tile side, or None for one pass over the whole image;
      `overlap`: LR pixels shared by neighbouring tiles (tile >= 2 * overlap).
    * `on_tile(done, total)`: optional progress callback.
    Returns float32 (sH, sW, C) or (N, sH, sW, C), clipped to [0, 1] unless
    `clip=False`.
    """
    if model is None:
        model = default_model()
    _check_model(model)
    array = np.asarray(images, dtype="float32")
    single = array.ndim == 3
    if single:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"images must be (H, W, C) or (N, H, W, C) with C in 1..4, got {np.shape(images)}")
    n, h, w, c = array.shape
    if h == 0 or w == 0:
        raise ValueError(f"images have zero size {h}x{w}")
    colour = array[..., :3] if c >= 3 else np.repeat(array[..., :1], 3, axis=-1)
    alpha = array[..., -1:] if c in (2, 4) else None

    if tile is None or tile <= 0:
        tile_h, tile_w = h, w
    else:
        tile = int(tile)
        overlap = int(overlap)
        if overlap < 0 or tile < 2 * overlap or tile < 1:
            raise ValueError(f"tile ({tile}) must be at least 2 x overlap ({overlap}), overlap >= 0")
        tile_h = tile_w = tile
    amplitude_map, amplitude_vector = _amplitude_map(noise_amplitude, n, h, w)
    noisy = amplitude_map is not None or np.any(amplitude_vector != 0)
    if seed is None and noisy:
        seed = int(np.random.default_rng().integers(0, 2**31 - 1))
    noise = [m.numpy() for m in model.seeded_noise(n, h, w, seed)] if noisy else None

    s, p = model.scale, model.padding
    run = _runner(model)
    output = np.zeros((n, h * s, w * s, 3), dtype="float32")
    ys, xs = tile_starts(h, tile_h, overlap), tile_starts(w, tile_w, overlap)
    wy = blend_weights(ys, tile_h, h, overlap, s)
    wx = blend_weights(xs, tile_w, w, overlap, s)
    total, done = len(ys) * len(xs), 0
    for y0, weight_y in zip(ys, wy):
        y1 = min(y0 + tile_h, h)
        for x0, weight_x in zip(xs, wx):
            x1 = min(x0 + tile_w, w)
            lr = colour[:, y0:y1, x0:x1]
            if amplitude_map is not None:
                amp = amplitude_map[:, y0:y1, x0:x1]
            else:
                amp = np.broadcast_to(amplitude_vector[:, None, None, None], (n, y1 - y0, x1 - x0, 1))
            if noise is not None:
                maps = [m[:, 2**l * y0:2**l * (y1 + 2 * p), 2**l * x0:2**l * (x1 + 2 * p)]
                        for l, m in enumerate(noise)]
            else:
                maps = [np.zeros((n, 2**l * (y1 - y0 + 2 * p), 2**l * (x1 - x0 + 2 * p), 1), "float32")
                        for l in range(model.levels)]
            sr = run(tf.constant(lr), tf.constant(amp, tf.float32), [tf.constant(m) for m in maps]).numpy()
            weight = weight_y[:, None, None] * weight_x[None, :, None]
            output[:, y0 * s:y1 * s, x0 * s:x1 * s] += sr * weight
            done += 1
            if on_tile is not None:
                on_tile(done, total)

    if c in (1, 2):
        output = output.mean(axis=-1, keepdims=True)
    if alpha is not None:
        upscaled_alpha = tf.image.resize(alpha, (h * s, w * s), method="bicubic").numpy()
        output = np.concatenate([output, upscaled_alpha], axis=-1)
    if clip:
        np.clip(output, 0.0, 1.0, out=output)
    return output[0] if single else output
