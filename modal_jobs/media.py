"""
Media tools shared by the web app and the worker; imports no Django.

ffmpeg comes from the `imageio-ffmpeg` pip package (a static build with libx264
and AAC), so nothing needs a system install; `FFMPEG_BINARY` overrides it, and a
system ffmpeg on PATH is the fallback. There is no ffprobe in that package:
metadata is read with PyAV, which links its own FFmpeg libraries.
"""

from __future__ import annotations

import errno
import json
import math
import os
import resource
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import av

# How far before the stated duration the last decodable frame may be.
END_TOLERANCE_SECONDS = 0.25
# The containers a clip may come in (FFmpeg's demuxer name -> the stored extension and type): what a video
# editor takes. No playlists (an HLS segment may name any file on the server), no concat, no image sequences.
UPLOAD_CONTAINERS = {
    "mov,mp4,m4a,3gp,3g2,mj2": (".mp4", "video/mp4"),
    "matroska,webm": (".webm", "video/webm"),
    "avi": (".avi", "video/x-msvideo"),
    "mpegts": (".ts", "video/mp2t"),
}
UNREADABLE = "This file is not a video we can read."
OUT_OF_MEMORY = "This video needs more memory to decode than we allow."


@dataclass(frozen=True)
class UploadLimits:
    """What an upload may ask of the machine that probes it (and later of the renderer)."""

    max_side: int = 4096
    max_frame_pixels: int = 4096 * 2304
    max_pixel_rate: float = 4096 * 2304 * 60  # pixels a second
    memory_bytes: int = 512 * 1024**2  # the probing process's data, decoders included
    seconds: float = 120.0

    def refusal(self, width: int, height: int, frame_rate: float) -> str:
        """One message for every size refusal; empty when the video is within the limits."""
        if max(width, height) <= self.max_side and width * height <= self.max_frame_pixels:
            if width * height * frame_rate <= self.max_pixel_rate:
                return ""
        rate = self.max_pixel_rate / self.max_frame_pixels
        return (
            f"This video is larger than we take: at most {self.max_side} pixels a side, "
            f"{self.max_frame_pixels / 1e6:.1f} megapixels a frame and {rate:g} such frames a second."
        )


class MediaProbeError(ValueError):
    """The file is not a video we can read; the message is meant for the user."""


@dataclass(frozen=True)
class MediaInfo:
    duration: float
    width: int
    height: int
    has_audio: bool
    frame_rate: float
    rotation: int
    video_codec: str
    audio_codec: str | None
    container: str

    @property
    def display_width(self) -> int:
        return self.height if self.rotation % 180 else self.width

    @property
    def display_height(self) -> int:
        return self.width if self.rotation % 180 else self.height


@cache
def ffmpeg_executable() -> str:
    """Return the ffmpeg to run: FFMPEG_BINARY, else the bundled build, else PATH."""
    configured = os.environ.get("FFMPEG_BINARY")
    if configured:
        return configured
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        found = shutil.which("ffmpeg")
        if found:
            return found
        raise RuntimeError("No ffmpeg found: install imageio-ffmpeg or set FFMPEG_BINARY.") from None


def run_ffmpeg(arguments: list[str], *, timeout: float | None = None) -> None:
    """Run ffmpeg quietly; raise RuntimeError with its last lines of stderr on failure."""
    command = [ffmpeg_executable(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *arguments]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if completed.returncode != 0:
        tail = "\n".join(completed.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"ffmpeg exited with {completed.returncode}: {tail}")


def probe_upload(path: str | Path, limits: UploadLimits) -> MediaInfo:
    """
    Probe an uploaded file in a child process held to limits.memory_bytes and limits.seconds.

    A decoder bomb (a few MB of MJPEG at 16000x16000) then costs the child its budget and the user a
    refusal, never the web process its memory; the child refuses by container and by picture size
    from the header before it decodes anything.
    """
    command = [sys.executable, "-m", "modal_jobs.media", str(path), json.dumps(asdict(limits))]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=limits.seconds, check=False)
    except subprocess.TimeoutExpired:
        raise MediaProbeError("This video takes too long to read.") from None
    try:
        answer = json.loads(completed.stdout)
    except ValueError:
        answer = {"error": UNREADABLE}  # the child died: over its memory budget, or a crash in a decoder
    if "error" in answer:
        raise MediaProbeError(answer["error"])
    return MediaInfo(**answer["info"])


def probe(path: str | Path, limits: UploadLimits | None = None, *, decode_end: bool = True) -> MediaInfo:
    """
    Read a video's metadata and decode its first and last frames, or raise MediaProbeError.

    With limits (an upload), only UPLOAD_CONTAINERS are opened, from the local file alone, and the
    picture size is checked from the header before any frame is decoded. decode_end=False skips the
    last frames: for a file ffmpeg has just written and said so, where decoding a keyframe interval
    to the end is only cost (7 % of a 20 s export).
    """
    options = {}
    if limits is not None:
        options = {"format_whitelist": ",".join(UPLOAD_CONTAINERS), "protocol_whitelist": "file"}
    try:
        container = av.open(str(path), options=options)
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise MediaProbeError(UNREADABLE) from error
    with container:
        if not container.streams.video:
            raise MediaProbeError("This file has no video stream.")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if not width or not height:
            raise MediaProbeError("This video has no picture size.")
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if limits is not None and (refusal := limits.refusal(width, height, float(rate) if rate else 0.0)):
            raise MediaProbeError(refusal)
        duration = _duration_seconds(container, stream)
        if not duration or not math.isfinite(duration) or duration <= 0:
            raise MediaProbeError("This video has no duration.")
        try:
            first_frame = next(container.decode(stream))
        except (av.FFmpegError, StopIteration) as error:
            raise MediaProbeError(_out_of_memory(error) or "This video's frames cannot be decoded.") from error
        if decode_end:
            _check_end_decodes(container, stream, duration)
        audio = container.streams.audio[0] if container.streams.audio else None
        return MediaInfo(
            duration=round(duration, 3),
            width=width,
            height=height,
            has_audio=audio is not None,
            frame_rate=float(rate) if rate else 0.0,
            rotation=int(getattr(first_frame, "rotation", 0) or 0) % 360,
            video_codec=stream.codec_context.name,
            audio_codec=audio.codec_context.name if audio else None,
            container=container.format.name,
        )


def _check_end_decodes(container, stream, duration: float) -> None:
    """Decode up to the last frame: a truncated upload fails here, not half-way through an export."""
    last_time = None
    try:
        seek_to = max(0.0, duration - 1.0)
        container.seek(int(seek_to / stream.time_base) + (stream.start_time or 0), stream=stream, backward=True)
        for frame in container.decode(stream):
            if frame.time is not None:
                last_time = frame.time
    except av.FFmpegError as error:
        message = _out_of_memory(error) or "This video is truncated or damaged: its end cannot be decoded."
        raise MediaProbeError(message) from error
    start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
    if last_time is None or last_time - start < duration - END_TOLERANCE_SECONDS:
        raise MediaProbeError("This video is truncated or damaged: its end cannot be decoded.")


def _out_of_memory(error: Exception) -> str:
    """The refusal when decoding ran out of the probe's memory budget (ENOMEM), else ""."""
    return OUT_OF_MEMORY if getattr(error, "errno", None) == errno.ENOMEM else ""


def _duration_seconds(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def generate_test_clip(
    path: str | Path,
    *,
    pattern: str = "testsrc2",
    tone_hz: int | None = 440,
    seconds: float = 20.0,
    width: int = 1280,
    height: int = 720,
    frame_rate: int = 30,
) -> None:
    """Render an H.264/AAC MP4 from one of ffmpeg's test patterns (and a sine tone)."""
    arguments = ["-f", "lavfi", "-i", f"{pattern}=size={width}x{height}:rate={frame_rate}:duration={seconds}"]
    if tone_hz is not None:
        arguments += ["-f", "lavfi", "-i", f"sine=frequency={tone_hz}:sample_rate=48000:duration={seconds}"]
        arguments += ["-c:a", "aac", "-b:a", "128k"]
    arguments += ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", str(frame_rate * 2)]
    arguments += ["-movflags", "+faststart", "-shortest", str(path)]
    run_ffmpeg(arguments)


def main(arguments: list[str]) -> None:
    """`python -m modal_jobs.media PATH LIMITS_JSON`: probe_upload's child; prints {"info": ...} or {"error": ...}."""
    limits = UploadLimits(**json.loads(arguments[1]))
    resource.setrlimit(resource.RLIMIT_DATA, (limits.memory_bytes, limits.memory_bytes))
    try:
        answer = {"info": asdict(probe(arguments[0], limits))}
    except MediaProbeError as error:
        answer = {"error": str(error)}
    except MemoryError:  # Python's own allocations hit the budget, rather than a decoder's
        answer = {"error": OUT_OF_MEMORY}
    print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
