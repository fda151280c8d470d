"""`sr-keras upscale`: super-resolve image files and folders into PNGs, tile by tile.

Every input is handled on its own: a bad file gets a message naming it and the
problem, the rest are still done, and the exit status is 1 if any failed
(2 for unusable arguments or model).
"""

import os
import sys
import time

from sr_keras.io.images import DEFAULT_MAX_PIXELS, SUPPORTED_EXTENSIONS
from sr_keras.precision import PRECISIONS
from sr_keras.tiling import DEFAULT_OVERLAP


def _tile_arg(text):
    import argparse

    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a whole number of pixels, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 'auto', 0 or positive, got {value}")
    return value


def _bytes_arg(text):
    import argparse

    from sr_keras.tiling import parse_bytes

    try:
        return parse_bytes(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_parser(subparsers, name):
    p = subparsers.add_parser(
        name, help="super-resolve images (files or folders) to PNG",
        description="Super-resolve images with a G-MGBP .keras model. Inputs may be files or folders "
                    f"(their {', '.join(SUPPORTED_EXTENSIONS)} files, sorted). Each output is a PNG with "
                    "the input's base name in --output-dir (16-bit for 16-bit inputs; grey, RGB and RGBA "
                    "kept; alpha is upscaled bicubically).",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders")
    p.add_argument("--output-dir", required=True, help="folder for the output PNGs (created if needed)")
    p.add_argument("--model", help="generator .keras file (default: the bundled 4x model, sr_keras.pretrained('x4'))")
    p.add_argument("--noise", type=float, required=True, metavar="A",
                   help="noise amplitude: 0 = faithful (best PSNR), 1 = most texture")
    p.add_argument("--noise-map", metavar="MASK",
                   help="greyscale image (resized to each input if needed); the per-pixel amplitude is "
                        "A x MASK, so use --noise 1 to take the mask values as they are")
    p.add_argument("--seed", type=int, help="seed for reproducible noise")
    p.add_argument("--tile", type=_tile_arg, default="auto",
                   help="LR tile side in pixels, bounds memory; 'auto' (default) picks the largest tiles "
                        "that fit --memory-budget (one pass when the image fits); 0 = whole image")
    p.add_argument("--memory-budget", type=_bytes_arg, metavar="SIZE",
                   help="memory the network's activations may use with --tile auto, e.g. 4G or 1500M "
                        "(default: half the available memory; 4G on a GPU)")
    p.add_argument("--tile-overlap", type=int, default=DEFAULT_OVERLAP,
                   help=f"LR pixels shared by neighbouring tiles (default {DEFAULT_OVERLAP})")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="compute precision: 'auto' (default) is bfloat16 on hardware that runs it fast "
                        "(CPUs with AVX512_BF16/AMX, GPUs of compute capability >= 8.0), else float32")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help="refuse inputs with more pixels (decompression bombs; default %(default)s)")
    return p


class _Progress:
    """A one-line stderr bar for files and tiles (redrawn in place on a terminal)."""

    def __init__(self, total_files, stream=None):
        self.total = total_files
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.file_index = 0
        self.name = ""
        self._last = 0.0

    def start_file(self, index, name):
        self.file_index, self.name = index, name
        self.tile(0, 1, force=True)

    def tile(self, done, total, force=False):
        now = time.monotonic()
        if not force and done < total and now - self._last < (0.2 if self.tty else 10.0):
            return
        self._last = now
        width = 20
        filled = int(width * done / max(total, 1))
        line = (f"[{'#' * filled}{'.' * (width - filled)}] file {self.file_index}/{self.total} "
                f"tile {done}/{total} {self.name}")
        if self.tty:
            self.stream.write("\r\033[K" + line)
            if done == total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def message(self, text):
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self.stream.flush()


def collect_inputs(paths):
    """Expand folders into their supported images (sorted); keep files and missing paths as given."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            names = sorted(n for n in os.listdir(path) if n.lower().endswith(SUPPORTED_EXTENSIONS))
            files.extend(os.path.join(path, n) for n in names if os.path.isfile(os.path.join(path, n)))
        else:
            files.append(path)
    return files


def _load_model(path):
    import keras

    import sr_keras  # noqa: F401  (registers the custom layers)

    return keras.saving.load_model(path, compile=False)


def _noise_amplitude(args, mask, height, width):
    """A scalar, or A x the mask resized (bilinear) to the input's LR size."""
    if mask is None:
        return args.noise
    import numpy as np
    import tensorflow as tf

    if mask.shape[:2] != (height, width):
        mask = tf.image.resize(mask, (height, width), method="bilinear").numpy()
    return args.noise * np.clip(mask, 0.0, 1.0)


def _read_mask(path, max_pixels):
    from sr_keras.io.images import read_image

    image = read_image(path, max_pixels=max_pixels)
    grey = image.pixels[..., :1] if image.pixels.shape[-1] in (1, 2) else image.rgb.mean(axis=-1, keepdims=True)
    return grey.astype("float32")


def run(args):
    from sr_keras.io.images import ImageReadError, read_image, write_png
    from sr_keras.precision import with_precision
    from sr_keras.upscale import NoDefaultModel, check_tile, default_model, upscale

    prog = "sr-keras upscale"
    if args.noise < 0:
        print(f"{prog}: --noise must be >= 0, got {args.noise}", file=sys.stderr)
        return 2
    try:
        check_tile(args.tile, args.tile_overlap, names=("--tile", "--tile-overlap"))
    except ValueError as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return 2
    try:
        if args.model is None:
            model = default_model()
        else:
            if not os.path.isfile(args.model):
                print(f"{prog}: {args.model}: model file not found", file=sys.stderr)
                return 2
            model = _load_model(args.model)
    except NoDefaultModel as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # Keras raises many types for a bad .keras file
        print(f"{prog}: {args.model}: cannot load model: {error}", file=sys.stderr)
        return 2
    if not all(hasattr(model, a) for a in ("scale", "levels", "padding")):
        print(f"{prog}: {args.model}: not an MGBPGenerator ({type(model).__name__})", file=sys.stderr)
        return 2
    model = with_precision(model, args.precision)
    mask = None
    if args.noise_map:
        try:
            mask = _read_mask(args.noise_map, args.max_pixels)
        except ImageReadError as error:
            print(f"{prog}: --noise-map {error}", file=sys.stderr)
            return 2

    files = collect_inputs(args.inputs)
    input_paths = {os.path.realpath(f) for f in files}
    progress = _Progress(len(files))
    written = skipped = failed = 0
    claimed = {}  # output path -> input that produced it in this run
    os.makedirs(args.output_dir, exist_ok=True)
    for index, path in enumerate(files, start=1):
        stem = os.path.splitext(os.path.basename(path))[0]
        output = os.path.join(args.output_dir, stem + ".png")
        real_output = os.path.realpath(output)
        if real_output in input_paths:
            progress.message(f"{prog}: {path}: refusing to write {output}: it is an input file")
            failed += 1
            continue
        if real_output in claimed:
            progress.message(f"{prog}: {path}: output {output} already written from {claimed[real_output]} "
                             "in this run (same base name)")
            failed += 1
            continue
        if os.path.exists(output) and not args.overwrite:
            progress.message(f"{prog}: {path}: skipped, {output} exists (use --overwrite)")
            skipped += 1
            continue
        progress.start_file(index, path)
        try:
            image = read_image(path, max_pixels=args.max_pixels)
            height, width = image.pixels.shape[:2]
            amplitude = _noise_amplitude(args, mask, height, width)
            sr = upscale(image.pixels, model, noise_amplitude=amplitude, seed=args.seed,
                         tile=args.tile or None, overlap=args.tile_overlap,
                         memory_budget=args.memory_budget, on_tile=progress.tile)
            write_png(output, sr, bit_depth=image.bit_depth)
        except ImageReadError as error:
            progress.message(f"{prog}: {error}")
            failed += 1
            continue
        except Exception as error:  # one bad file (OOM, odd shape, disk full) must not stop the rest
            progress.message(f"{prog}: {path}: failed: {type(error).__name__}: {error}")
            failed += 1
            continue
        claimed[real_output] = path
        written += 1
    print(f"{written} written, {skipped} skipped (exists), {failed} failed")
    return 1 if failed else 0
