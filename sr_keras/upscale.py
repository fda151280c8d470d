"""Upscale whole images with an `MGBPGenerator`, tile by tile, without seams.

Memory for the network is bounded by the tile, not the image: by default the
tiles are the largest that fit a memory budget (`sr_keras.tiling.plan_tiles`),
so an image that fits is run in one pass and a large one pays little for its
overlaps. Each tile is cut from the reflection-padded image, so it brings
real neighbouring pixels where the network would otherwise pad by
reflection, and tiles on the image border see exactly what a whole-image
pass sees. Neighbouring tiles are cross-faded with raised-cosine weights that
sum to exactly one; each tile's outer quarter-overlap (its least reliable
pixels, which lack context) gets weight zero. Measured at the default overlap
(docs/upscale.md): the published weights match one pass to 1.1e-4 at amplitude 0
and 1.1e-3 at amplitude 1 (below an 8-bit grey level); the bundled model to 1.8e-7.

Noise stays seamless too: the per-level noise maps are drawn once for the
whole padded image, exactly as the generator would draw them for a seed, and
every tile gets the slice under it. A seeded tiled run therefore reproduces
`generator(lr, noise_amplitude=a, seed=s)` on the whole image.
"""

import functools
import weakref

import numpy as np
import tensorflow as tf

from sr_keras.models.generator import reflect_pad
from sr_keras.precision import model_precision, resolve, with_precision
from sr_keras.tiling import DEFAULT_OVERLAP, balanced_tile, blend_weights, plan_tiles, tile_starts
from sr_keras.zoo import resolve_model


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


# -- the network as one traced function ------------------------------------------

_RUNNERS = weakref.WeakKeyDictionary()


def _runner(model):
    """A tf.function of the model on pre-padded tiles with a dynamic-shape signature: traced once, any size."""
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
            return tf.cast(generator(lr, noise_amplitude=amplitude, noise=noise, prepadded=True), tf.float32)

        _RUNNERS[model] = fn
    return fn


_COPIES = weakref.WeakKeyDictionary()


def at_precision(model, precision):
    """`model` run at `precision` (None: as it is): itself, or its copy at the other precision.

    The copy (and so its traced function) is kept per model and refreshed with
    the model's current weights on every call, which costs milliseconds.
    """
    if precision is None or model_precision(model) == resolve(precision):
        return model
    copy = _COPIES.get(model)
    if copy is None:
        copy = _COPIES[model] = with_precision(model, precision)
    else:
        copy.set_weights(model.get_weights())
    return copy


@tf.function(reduce_retracing=True)
def _weighted(sr, weight_y, weight_x):
    """A tile's output times its cross-fade weights, in TF: multi-threaded, no NumPy temporaries."""
    return sr * (weight_y[:, None] * weight_x[None, :])[None, :, :, None]


def _accumulate(output, tile, top, left, written_rows, written_cols):
    """Add `tile` into `output` at (top, left), assigning where nothing is written yet.

    Written so far: rows above `written_rows`, and columns left of `written_cols`.
    """
    fresh_top, fresh_left = max(written_rows - top, 0), max(written_cols - left, 0)
    height, width = tile.shape[1:3]
    output[:, top:top + fresh_top, left:left + width] += tile[:, :fresh_top]
    output[:, top + fresh_top:top + height, left:left + fresh_left] += tile[:, fresh_top:, :fresh_left]
    output[:, top + fresh_top:top + height, left + fresh_left:left + width] = tile[:, fresh_top:, fresh_left:]


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


def check_tile(tile, overlap, names=("tile", "overlap")):
    """Raise ValueError for `tile` / `overlap` values `upscale` cannot use.

    Needs no image, so the CLI checks its flags (`names`) before reading any file.
    """
    tile_name, overlap_name = names
    if overlap < 0:
        raise ValueError(f"{overlap_name} must be >= 0, got {overlap}")
    if tile is None or tile == "auto":
        return
    if isinstance(tile, str):
        raise ValueError(f"{tile_name} must be 'auto', None, 0 or a positive int, got {tile!r}")
    if 0 < tile < 2 * overlap:
        raise ValueError(f"{tile_name} ({tile}) must be at least 2 x {overlap_name} ({overlap})")


def resolve_tile(model, batch, height, width, tile, overlap, memory_budget=None):
    """(tile_height, tile_width) for an `upscale` call's `tile` argument (see there)."""
    check_tile(tile, overlap)
    if tile is None or (tile != "auto" and tile <= 0):
        return height, width
    if tile == "auto":
        return plan_tiles(model, batch, height, width, memory_budget, overlap)
    tile = int(tile)
    return balanced_tile(height, tile, overlap), balanced_tile(width, tile, overlap)


def upscale(images, model=None, noise_amplitude=0.0, seed=None, tile="auto", overlap=DEFAULT_OVERLAP,
            memory_budget=None, clip=True, on_tile=None, shared_noise=False, precision=None):
    """Super-resolve an (H, W, C) image or (N, H, W, C) batch with values in [0, 1].

    * `model`: an `MGBPGenerator`, a model name ("x4", "pirm-r3", ...; see
      `sr-keras models`) or a `.keras` path; None uses the bundled 4x one
      (`default_model()`).

    * C = 3: RGB; C = 1: grey (run as replicated RGB, returned as the channel
      mean); C = 4 or 2: colour plus alpha, the alpha upscaled bicubically.
    * `noise_amplitude`: scalar, one per image (N,), or a per-pixel LR map
      (H, W), (H, W, 1) or (N, H, W, 1) with values in [0, 1].
    * `seed`: int for reproducible noise (None: a fresh random seed).
    * `tile`: "auto" (the largest tiles whose activations fit `memory_budget`
      bytes, default half the available memory; one pass when the image
      fits), an LR tile side (balanced so no tile is larger than needed), or
      None / 0 for one pass over the whole image.
    * `overlap`: LR pixels shared by neighbouring tiles (tile >= 2 * overlap).
    * `on_tile(done, total)`: optional progress callback.
    * `shared_noise`: give every image of the batch the same noise field (the
      one a single image gets for `seed`), e.g. the frames of a video, whose
      texture then does not flicker.
    * `precision`: None runs the model as built or loaded; "float32",
      "bfloat16" or "auto" (bfloat16 where the hardware runs it fast) run it
      at that precision (`sr_keras.precision`).
    Returns float32 (sH, sW, C) or (N, sH, sW, C), clipped to [0, 1] unless
    `clip=False`.
    """
    model = default_model() if model is None else resolve_model(model)
    _check_model(model)
    model = at_precision(model, precision)
    array = np.asarray(images, dtype="float32")
    single = array.ndim == 3
    if single:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"images must be (H, W, C) or (N, H, W, C) with C in 1..4, got {np.shape(images)}")
    n, h, w, c = array.shape
    if h == 0 or w == 0:
        raise ValueError(f"images have zero size {h}x{w}")
    overlap = int(overlap)
    colour = array[..., :3] if c >= 3 else np.repeat(array[..., :1], 3, axis=-1)
    alpha = array[..., -1:] if c in (2, 4) else None
    tile_h, tile_w = resolve_tile(model, n, h, w, tile, overlap, memory_budget)

    amplitude_map, amplitude_vector = _amplitude_map(noise_amplitude, n, h, w)
    noisy = amplitude_map is not None or np.any(amplitude_vector != 0)
    if seed is None and noisy:
        seed = int(np.random.default_rng().integers(0, 2**31 - 1))
    noise = None
    if noisy:
        noise = [m.numpy() for m in model.seeded_noise(1 if shared_noise else n, h, w, seed)]
        noise = [np.broadcast_to(m, (n, *m.shape[1:])) for m in noise]

    s, p = model.scale, model.padding
    # Tiles are cut from the padded image: tile [y0, y1) reads padded rows [y0, y1 + 2p).
    padded = reflect_pad(tf.constant(colour), p).numpy()
    if amplitude_map is not None:
        padded_amplitude = reflect_pad(tf.constant(amplitude_map), p).numpy()
    run = _runner(model)
    ys, xs = tile_starts(h, tile_h, overlap), tile_starts(w, tile_w, overlap)
    wy = blend_weights(ys, tile_h, h, overlap, s)
    wx = blend_weights(xs, tile_w, w, overlap, s)
    total, done = len(ys) * len(xs), 0
    # Every output pixel is first written by the first tile (in raster order) covering it, so
    # the buffer needs no zeroing: each tile assigns the part that no earlier tile reached
    # (rows past the previous tile row, columns past the previous tile) and adds the rest.
    output = np.empty((n, h * s, w * s, 3), dtype="float32") if total > 1 else None
    previous_y1 = 0
    for y0, weight_y in zip(ys, wy, strict=True):
        y1 = min(y0 + tile_h, h)
        previous_x1 = 0
        for x0, weight_x in zip(xs, wx, strict=True):
            x1 = min(x0 + tile_w, w)
            window = (slice(None), slice(y0, y1 + 2 * p), slice(x0, x1 + 2 * p))
            if amplitude_map is not None:
                amp = padded_amplitude[window]
            else:
                amp = np.broadcast_to(amplitude_vector[:, None, None, None],
                                      (n, y1 - y0 + 2 * p, x1 - x0 + 2 * p, 1))
            if noise is not None:
                maps = [m[:, 2**lv * y0:2**lv * (y1 + 2 * p), 2**lv * x0:2**lv * (x1 + 2 * p)]
                        for lv, m in enumerate(noise)]
            else:
                maps = [np.zeros((n, 2**lv * (y1 - y0 + 2 * p), 2**lv * (x1 - x0 + 2 * p), 1), "float32")
                        for lv in range(model.levels)]
            sr = run(tf.constant(padded[window]), tf.constant(amp, tf.float32), [tf.constant(m) for m in maps])
            if total == 1:
                output = sr.numpy()
            else:
                _accumulate(output, np.asarray(_weighted(sr, weight_y, weight_x)), y0 * s, x0 * s,
                            previous_y1 * s, previous_x1 * s)
            previous_x1 = x1
            done += 1
            if on_tile is not None:
                on_tile(done, total)
        previous_y1 = y1

    if c in (1, 2):
        output = output.mean(axis=-1, keepdims=True)
    if alpha is not None:
        upscaled_alpha = tf.image.resize(alpha, (h * s, w * s), method="bicubic").numpy()
        output = np.concatenate([output, upscaled_alpha], axis=-1)
    if clip:
        np.clip(output, 0.0, 1.0, out=output)
    return output[0] if single else output
