"""Upscale a video file: decode, upscale and encode frame batches with PyAV, streaming.

No frame goes to disk: packets are demuxed, decoded, upscaled in batches
(`sr_keras.upscale`, so frames are tiled within the memory budget) and
encoded as they come, and the output is renamed into place only when it is
complete (`sr_keras.io.atomic`). Each frame keeps its timestamp and the
output stream the input's time base, so frame count, frame rate and variable
frame timing survive. Audio and subtitle packets are copied as they are;
audio whose codec the output container cannot hold is re-encoded to AAC, and
such subtitles are left out with a warning.

Noise: by default one noise field, drawn once from the seed, serves every
frame (`shared_noise`), so the texture the network adds stays in place from
frame to frame; fresh noise per frame, for comparison, flickers.
"""

import dataclasses
import time

import av
import numpy as np

from sr_keras.io.atomic import atomic_output_path
from sr_keras.resize import output_size, resize_result
from sr_keras.tiling import DEFAULT_OVERLAP, default_memory_budget, plan_tiles

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts", ".mpg", ".mpeg", ".flv",
                    ".wmv")
DEFAULT_CODEC = "libx264"
DEFAULT_PIX_FMT = "yuv420p"
FALLBACK_AUDIO_CODEC = "aac"
# Frames upscaled together when they fit the memory budget in one pass (on a GPU; see `frames_per_batch`).
MAX_BATCH = 8


class VideoError(ValueError):
    """A video that cannot be read or written as asked; the message names the file and the problem."""


@dataclasses.dataclass
class EncoderOptions:
    """How the upscaled video stream is encoded (FFmpeg encoder names and options)."""

    codec: str = DEFAULT_CODEC
    crf: int | None = None  # None: the encoder's default (libx264: 23)
    preset: str | None = None  # None: the encoder's default (libx264: medium)
    pix_fmt: str = DEFAULT_PIX_FMT  # e.g. yuv420p10le for 10-bit H.264 / H.265


@dataclasses.dataclass
class NoiseOptions:
    amplitude: object = 0.0  # scalar or a per-pixel (H, W, 1) map at the frame's size
    seed: int | None = None  # None: one random seed for the whole video
    per_frame: bool = False  # fresh noise every frame (flickers) instead of one field


@dataclasses.dataclass
class TileOptions:
    tile: object = "auto"
    overlap: int = DEFAULT_OVERLAP
    memory_budget: int | None = None
    batch: int | None = None  # frames per batch; None: `frames_per_batch`


def is_video(path):
    return str(path).lower().endswith(VIDEO_EXTENSIONS)


def frames_per_batch(model, height, width, memory_budget=None):
    """How many frames to upscale at once: 1 on a CPU, where batching gains nothing (docs/upscale.md);
    on a GPU as many as fit the budget in one untiled pass, up to MAX_BATCH."""
    import tensorflow as tf

    if not tf.config.list_logical_devices("GPU"):
        return 1
    budget = default_memory_budget() if memory_budget is None else memory_budget
    for batch in range(MAX_BATCH, 1, -1):
        if plan_tiles(model, batch, height, width, budget) == (height, width):
            return batch
    return 1


def _bits(pix_fmt):
    return max(component.bits for component in av.VideoFormat(pix_fmt).components)


def _open_input(path):
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as error:
        raise VideoError(f"{path}: not a readable video ({_reason(error)})") from error
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: has no video stream")
    return container


def frame_size(path):
    """(height, width) of the first video stream of `path`; raises `VideoError` naming the file."""
    with _open_input(path) as container:
        context = container.streams.video[0].codec_context
        return context.height, context.width


def _reason(error):
    return getattr(error, "strerror", None) or str(error)


def _add_video_stream(output, source, width, height, options, path):
    """The output video stream: the input's rate and time base, the requested encoder and size."""
    try:
        codec = av.Codec(options.codec, "w")
    except av.error.FFmpegError as error:
        raise VideoError(f"{path}: no video encoder {options.codec!r} in this FFmpeg ({_reason(error)})") from error
    formats = [f.name for f in codec.video_formats or ()]
    if formats and options.pix_fmt not in formats:
        raise VideoError(f"{path}: {options.codec} cannot encode {options.pix_fmt}; it can: {', '.join(formats)}")
    if codec.name not in output.supported_codecs:
        raise VideoError(f"{path}: the {output.format.name} container cannot hold {codec.name} video")
    rate = source.average_rate or source.guessed_rate
    stream = output.add_stream(options.codec, rate=rate)
    stream.width, stream.height, stream.pix_fmt = width, height, options.pix_fmt
    stream.time_base = source.time_base
    stream.codec_context.time_base = source.time_base
    stream.options = {key: str(value) for key, value in (("crf", options.crf), ("preset", options.preset))
                      if value is not None}
    return stream


def _add_passthrough_streams(output, source, warn):
    """Audio and subtitle streams of `source` in `output`: input stream index -> (output stream, re-encode?)."""
    streams = {}
    for stream in (*source.streams.audio, *source.streams.subtitles):
        name = stream.codec_context.name
        if name in output.supported_codecs:
            streams[stream.index] = (output.add_stream_from_template(stream), False)
        elif stream.type == "audio" and FALLBACK_AUDIO_CODEC in output.supported_codecs:
            warn(f"{name} audio cannot go into {output.format.name}; re-encoding it to AAC")
            encoded = output.add_stream(FALLBACK_AUDIO_CODEC, rate=stream.rate)
            encoded.layout = stream.layout
            streams[stream.index] = (encoded, True)
        else:
            warn(f"{name} {stream.type} stream #{stream.index} cannot go into {output.format.name}; left out")
    return streams


class _FrameUpscaler:
    """Upscales lists of decoded frames into encoder-ready frames with the input's timestamps."""

    def __init__(self, model, noise, tiles, size, out_pix_fmt, in_bits):
        self.model, self.noise, self.tiles, self.size = model, noise, tiles, size
        self.rgb_in = "rgb24" if in_bits <= 8 else "rgb48le"
        self.rgb_out = "rgb24" if _bits(out_pix_fmt) <= 8 else "rgb48le"
        self.seed = noise.seed if noise.seed is not None else int(np.random.default_rng().integers(0, 2**31 - 1))
        self.frames_done = 0

    def __call__(self, frames):
        from sr_keras.upscale import upscale

        peak_in = 255.0 if self.rgb_in == "rgb24" else 65535.0
        batch = np.stack([f.to_ndarray(format=self.rgb_in) for f in frames]).astype("float32") / peak_in
        seed = self.seed + self.frames_done if self.noise.per_frame else self.seed
        sr = upscale(batch, self.model, noise_amplitude=self.noise.amplitude, seed=seed,
                     tile=self.tiles.tile, overlap=self.tiles.overlap, memory_budget=self.tiles.memory_budget,
                     shared_noise=not self.noise.per_frame)
        if sr.shape[1:3] != self.size:
            sr = resize_result(sr, *self.size)
        self.frames_done += len(frames)
        peak, dtype = (255.0, np.uint8) if self.rgb_out == "rgb24" else (65535.0, np.uint16)
        encoded = []
        for source, pixels in zip(frames, sr, strict=True):
            frame = av.VideoFrame.from_ndarray(np.rint(np.clip(pixels, 0, 1) * peak).astype(dtype),
                                               format=self.rgb_out)
            frame.pts, frame.time_base = source.pts, source.time_base
            encoded.append(frame)
        return encoded


def _expected_frames(stream):
    if stream.frames:
        return stream.frames
    if stream.duration and stream.average_rate:
        return round(float(stream.duration * stream.time_base * stream.average_rate))
    return None


def _copy_or_reencode(packet, output, target, reencode):
    if packet.dts is None:  # the demuxer's end-of-stream marker
        if reencode:
            output.mux(target.encode(None))
        return
    if not reencode:
        packet.stream = target
        output.mux(packet)
        return
    for frame in packet.decode():
        output.mux(target.encode(frame))


def _transcode(source, output, stream, passthrough, upscaler, batch, report):
    """Demux everything once: video frames go through `upscaler` in batches, other packets are copied."""
    video = source.streams.video[0]
    pending, done = [], 0

    def flush():
        nonlocal done
        for frame in upscaler(pending):
            output.mux(stream.encode(frame))
        done += len(pending)
        pending.clear()
        report(done)

    try:
        for packet in source.demux(video, *(source.streams[index] for index in passthrough)):
            if packet.stream.index != video.index:
                _copy_or_reencode(packet, output, *passthrough[packet.stream.index])
                continue
            for frame in packet.decode():
                pending.append(frame)
                if len(pending) >= batch:
                    flush()
    except av.error.FFmpegError as error:
        raise VideoError(f"{source.name}: corrupt or truncated video, stopped after {done + len(pending)} "
                         f"frames ({_reason(error)}); nothing written") from error
    if pending:
        flush()
    output.mux(stream.encode(None))
    return done


def upscale_video(src, dst, model, noise=None, tiles=None, encoder=None, outscale=None, on_frames=None,
                  warn=print):
    """Upscale video file `src` into `dst` (the container from its extension); returns the frames written.

    `on_frames(done, expected_total_or_None, seconds)` reports progress; `warn(text)` gets notes
    (streams re-encoded or left out, a short input). Raises `VideoError` naming the file for an
    unreadable, corrupt or truncated input, and then leaves no output.
    """
    noise, tiles, encoder = noise or NoiseOptions(), tiles or TileOptions(), encoder or EncoderOptions()
    source = _open_input(src)
    with source:
        video = source.streams.video[0]
        video.thread_type = "AUTO"
        height, width = video.codec_context.height, video.codec_context.width
        if not height or not width:
            raise VideoError(f"{src}: video stream has no frame size")
        size = output_size(height, width, model.scale if outscale is None else outscale, even=True)
        batch = tiles.batch or frames_per_batch(model, height, width, tiles.memory_budget)
        expected = _expected_frames(video)
        with atomic_output_path(dst) as tmp, av.open(tmp, "w") as output:
            stream = _add_video_stream(output, video, size[1], size[0], encoder, dst)
            passthrough = _add_passthrough_streams(output, source, lambda text: warn(f"{src}: {text}"))
            upscaler = _FrameUpscaler(model, noise, tiles, size, encoder.pix_fmt,
                                      _bits(video.codec_context.pix_fmt or "yuv420p"))
            start = time.monotonic()
            done = _transcode(source, output, stream, passthrough, upscaler, batch,
                              lambda done: on_frames and on_frames(done, expected, time.monotonic() - start))
            if done == 0:
                raise VideoError(f"{src}: no frame could be decoded")
    if expected and done < expected:
        warn(f"{src}: only {done} of the {expected} frames the container announces could be decoded "
             "(truncated?); those were written")
    return done
