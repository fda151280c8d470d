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
import itertools
import time
import warnings

import av
import numpy as np
import tensorflow as tf

from sr_keras.io.atomic import atomic_output_path
from sr_keras.resize import output_size, resize_result
from sr_keras.tiling import DEFAULT_OVERLAP, default_memory_budget, plan_tiles
from sr_keras.upscale import upscale

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts", ".mpg", ".mpeg", ".flv",
                    ".wmv")
DEFAULT_CODEC = "libx264"
DEFAULT_PIX_FMT = "yuv420p"
FALLBACK_AUDIO_CODEC = "aac"
# channel count -> the FFmpeg layout AAC is given (more than 8 channels are mixed down to stereo)
STANDARD_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
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
    except av.codec.codec.UnknownCodecError as error:
        raise VideoError(f"{path}: no video encoder {options.codec!r} in this FFmpeg") from error
    formats = [f.name for f in codec.video_formats or ()]
    if formats and options.pix_fmt not in formats:
        raise VideoError(f"{path}: {options.codec} cannot encode {options.pix_fmt}; it can: {', '.join(formats)}")
    try:
        stream = output.add_stream(options.codec, rate=source.average_rate or source.guessed_rate)
    except ValueError as error:  # PyAV's word for a codec the container cannot hold
        raise VideoError(f"{path}: {error}") from error
    stream.width, stream.height, stream.pix_fmt = width, height, options.pix_fmt
    stream.time_base = source.time_base
    stream.codec_context.time_base = source.time_base
    stream.options = {key: str(value) for key, value in (("crf", options.crf), ("preset", options.preset))
                      if value is not None}
    return stream


def _add_passthrough_streams(output, source, warn):
    """Audio and subtitle streams of `source` in `output`: input stream index -> (output stream, resampler),
    the resampler (to the AAC encoder's format and frame size) None for a stream copied as it is."""
    streams = {}
    for stream in (*source.streams.audio, *source.streams.subtitles):
        name = stream.codec_context.name
        try:
            streams[stream.index] = (output.add_stream_from_template(stream), None)
            continue
        except ValueError:  # the container cannot hold this codec
            pass
        if stream.type == "audio":
            warn(f"{name} audio cannot go into {output.format.name}; re-encoding it to AAC")
            try:
                encoded = output.add_stream(FALLBACK_AUDIO_CODEC, rate=stream.rate)
            except ValueError as error:
                raise _OutputError(f"cannot hold the {name} audio, nor AAC: {error}") from error
            layout = STANDARD_LAYOUTS.get(stream.channels, "stereo")  # AAC refuses unnamed channel layouts
            encoded.layout = layout
            resampler = av.AudioResampler(format=encoded.codec_context.codec.audio_formats[0].name,
                                          layout=layout, rate=stream.rate,
                                          frame_size=encoded.codec_context.frame_size or None)
            streams[stream.index] = (encoded, resampler)
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


class _OutputError(Exception):
    """Writing the output failed; `upscale_video` names the output file (not its temporary name)."""


class TruncatedVideo(VideoError):
    """The input ended before the length its container announces; the frames decoded were written."""


def _expected_frames(container, stream):
    """The frame count the container announces (or its duration implies), or None when it does not say."""
    if stream.frames:
        return stream.frames
    rate = stream.average_rate or stream.guessed_rate
    if not rate:
        return None
    if stream.duration:
        return round(float(stream.duration * stream.time_base * rate))
    if container.duration:
        return round(container.duration / av.time_base * float(rate))
    return None


def _encode(output, stream, frame):
    """Encode `frame` (None: flush) into `stream` and mux the packets; encoder failures name the output."""
    try:
        output.mux(stream.encode(frame))
    except av.error.FFmpegError as error:
        raise _OutputError(f"cannot encode {stream.type} ({_reason(error)})") from error


def _copy_or_reencode(packet, output, target, resampler):
    """Mux `packet` into `target` as it is, or (with a resampler) decoded, resampled and re-encoded."""
    if packet.dts is None:  # the demuxer's end-of-stream marker
        if resampler is not None:
            for frame in resampler.resample(None):
                _encode(output, target, frame)
            _encode(output, target, None)
        return
    if resampler is None:
        packet.stream = target
        output.mux(packet)
        return
    for frame in packet.decode():
        for resampled in resampler.resample(frame):
            _encode(output, target, resampled)


def _transcode(source, output, stream, passthrough, upscaler, batch, report):
    """Demux everything once: video frames go through `upscaler` in batches, other packets are copied."""
    video = source.streams.video[0]
    pending, times = [], []  # frames decoded, not yet upscaled; the times of those written

    def flush():
        for frame in upscaler(pending):
            _encode(output, stream, frame)
        times.extend(frame.time for frame in pending)
        pending.clear()
        report(len(times))

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
        raise VideoError(f"{source.name}: corrupt or truncated video, stopped after {len(times) + len(pending)} "
                         f"frames ({_reason(error)}); nothing written") from error
    if pending:
        flush()
    _encode(output, stream, None)
    return times


def _shortfall(container, stream, times):
    """How the frames decoded fall short of what the container announces, or None when they don't.

    By count where the container records it (MP4), else by time: a gap at the end longer than three
    of the longest frame intervals seen (variable frame rates allowed for).
    """
    if stream.frames:
        return f"{len(times)} of the {stream.frames} frames" if len(times) < stream.frames - 1 else None
    if stream.duration:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / av.time_base
    else:
        return None
    rate = stream.average_rate or stream.guessed_rate
    valid = [t for t in times if t is not None]
    if not valid:
        return None
    step = max([b - a for a, b in itertools.pairwise(valid)] + [1 / float(rate) if rate else 0.0])
    length = valid[-1] - valid[0] + step
    return f"{length:.2f} s of the {duration:.2f} s" if duration - length > 3 * step else None


def upscale_video(src, dst, model, noise=None, tiles=None, encoder=None, outscale=None, on_frames=None,
                  warn=warnings.warn):
    """Upscale video file `src` into `dst` (the container from its extension); returns the frames written.

    `on_frames(done, expected_total_or_None, seconds)` reports progress; `warn(text)` gets notes
    (streams re-encoded or left out). Raises `VideoError` naming the file for an unreadable or
    corrupt input, and then leaves no output; `TruncatedVideo` when the input ends early without a
    decoding error, after the frames it had were written into a valid `dst`.
    """
    noise, tiles, encoder = noise or NoiseOptions(), tiles or TileOptions(), encoder or EncoderOptions()
    with _open_input(src) as source:
        video = source.streams.video[0]
        video.thread_type = "AUTO"
        height, width = video.codec_context.height, video.codec_context.width
        if not height or not width:
            raise VideoError(f"{src}: video stream has no frame size")
        size = output_size(height, width, model.scale if outscale is None else outscale, even=True)
        upscaler = _FrameUpscaler(model, noise, tiles, size, encoder.pix_fmt,
                                  _bits(video.codec_context.pix_fmt or "yuv420p"))
        batch = tiles.batch or frames_per_batch(model, height, width, tiles.memory_budget)
        expected, start = _expected_frames(source, video), time.monotonic()

        def report(done):
            if on_frames is not None:
                on_frames(done, expected, time.monotonic() - start)

        try:
            with atomic_output_path(dst) as tmp, av.open(tmp, "w") as output:
                stream = _add_video_stream(output, video, size[1], size[0], encoder, dst)
                passthrough = _add_passthrough_streams(output, source, lambda text: warn(f"{src}: {text}"))
                times = _transcode(source, output, stream, passthrough, upscaler, batch, report)
                if not times:
                    raise VideoError(f"{src}: no frame could be decoded")
        except _OutputError as error:
            raise VideoError(f"{dst}: {error}") from error
        shortfall = _shortfall(source, video, times)
    if shortfall:
        raise TruncatedVideo(f"{src}: truncated: {shortfall} its container announces could be decoded; "
                             f"those {len(times)} frames were written to {dst}")
    return len(times)
