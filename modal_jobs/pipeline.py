"""
The video pipeline: one ffmpeg run per export, reporting media time as it goes.

Imports no Django: it runs in a Modal container and in a local worker alike.
Every kind produces H.264 / AAC (48 kHz stereo) in an MP4 with even dimensions
and a constant frame rate. ffmpeg applies rotation metadata itself (autorotate),
the `fps` filter turns variable frame rates into constant ones, and clips
without audio get silence so that every output has an audio track.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Literal

from .media import ffmpeg_executable
from .schema import ClipFacts, FramingParams, MultiClipParams, OverlayParams, Strict

AUDIO_RATE = 48000
DEFAULT_FRAME_RATE = 30
NVENC_TRIAL_SECONDS = 30
# Each part of a multi-part render is sampled for its pace (part_costs): this much of it, if the samples
# together stay under SAMPLES_SHARE of the whole render's media (so a short export is never slowed down).
SAMPLE_SECONDS = 1.0
SAMPLES_SHARE = 0.03
# A chunk decodes from this long before its first frame, so that the fps filter picks each frame it keeps
# from the source exactly as the whole render does (the source frame nearest its first may lie before it).
CHUNK_LEAD_SECONDS = 1.0
AUDIO: Literal["audio"] = "audio"


class RenderError(RuntimeError):
    """ffmpeg failed; the message carries its last lines of output."""


@dataclass(frozen=True)
class Part:
    """A stretch of the output that renders at a pace of its own (one clip of a multi-clip export)."""

    seconds: float
    sample: list[str]  # ffmpeg inputs, filter and map that make its first SAMPLE_SECONDS of video, as rendered


@dataclass
class RenderPlan:
    input_arguments: list[str]
    filter_graph: str
    duration: float
    width: int
    height: int
    frame_rate: int = DEFAULT_FRAME_RATE
    parts: list[Part] = field(default_factory=list)  # in timeline order; none: one part, at one pace
    outputs: tuple[str, ...] = ("vout", "aout")  # the graph's outputs: a chunk has only video, the audio only audio
    frames: int | None = None  # exactly this many video frames (a chunk); else as many as `duration` holds

    @property
    def sampled(self) -> bool:
        """Whether part_costs samples the parts: more than one, at a cost of at most SAMPLES_SHARE."""
        return len(self.parts) > 1 and len(self.parts) * SAMPLE_SECONDS <= SAMPLES_SHARE * self.duration


@dataclass(frozen=True)
class Chunk:
    """Output frames [first_frame, end_frame) of an export's video: what one chunk renders."""

    index: int
    first_frame: int
    end_frame: int

    @property
    def frames(self) -> int:
        return self.end_frame - self.first_frame

    def seconds(self, frame_rate: int) -> float:
        return self.frames / frame_rate


def output_frames(duration: float, frame_rate: int) -> int:
    """The frames a render of `duration` writes: one per 1/frame_rate starting before its end (ffmpeg's -t)."""
    return math.ceil(round(duration * frame_rate, 6))


def plan_chunks(duration: float, frame_rate: int, chunk_seconds: float) -> list[Chunk]:
    """Chunks of about chunk_seconds each; none when the export is no longer than two (it renders whole)."""
    if chunk_seconds <= 0 or duration <= 2 * chunk_seconds:
        return []
    total = output_frames(duration, frame_rate)
    count = round(duration / chunk_seconds)
    bounds = [total * number // count for number in range(count + 1)]
    return [Chunk(index, first, end) for index, (first, end) in enumerate(pairwise(bounds))]


@dataclass(frozen=True)
class Window:
    """Where one video chain reads its source: a whole stretch of a clip, or the frames of it a chunk keeps."""

    input_arguments: list[str]  # -ss and -t before the clip's -i
    trim: str  # the chain's trim, after fps and the kind's filters
    skipped_frames: int  # output frames of the stretch before the chain's first: time-driven filters add them
    frames: int  # output frames the chain yields

    @classmethod
    def of(cls, start: float, duration: float, frame_rate: int, frames: tuple[int, int] | None) -> Window:
        """The stretch [start, start + duration) of a clip, or only its output frames `frames` (first, end)."""
        if frames is None:
            whole = ["-ss", seconds(start), "-t", seconds(duration)]
            return cls(whole, f"trim=duration={seconds(duration)}", 0, output_frames(duration, frame_rate))
        first, end = frames
        lead = min(round(CHUNK_LEAD_SECONDS * frame_rate), first)
        skipped = (first - lead) / frame_rate
        arguments = ["-ss", seconds(start + skipped), "-t", seconds(duration - skipped)]
        return cls(arguments, f"trim=start_frame={lead}:end_frame={lead + end - first}", first - lead, end - first)


def overlap(chunk: Chunk | None, first: int, count: int) -> tuple[int, int] | None:
    """The chunk's frames among a stretch's `count` frames from `first`, counted from the stretch's start."""
    if chunk is None:
        return None
    start, end = max(chunk.first_frame, first), min(chunk.end_frame, first + count)
    return (start - first, end - first) if start < end else None


def even_within(value: float) -> int:
    """Largest even size that fits in `value` (for crops, which cannot exceed the source)."""
    return max(2, int(value) // 2 * 2)


def seconds(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"


def build_plan(
    kind: str,
    params: Strict,
    clips: Mapping[int, tuple[Path, ClipFacts]],
    only: Chunk | Literal["audio"] | None = None,
) -> RenderPlan:
    """The whole render; with `only`, a chunked render's pieces: one chunk's video frames, or the whole audio."""
    chunk = only if isinstance(only, Chunk) else None
    audio = only == AUDIO
    if isinstance(params, MultiClipParams):
        return _multi_clip(params, clips, chunk, audio)
    if isinstance(params, FramingParams):
        return _framing(params, clips, chunk, audio)
    if isinstance(params, OverlayParams):
        return _overlay(params, clips, chunk, audio)
    raise ValueError(f"No pipeline for {kind!r}.")


def _audio_chain(label_in: str | None, duration: float, label_out: str) -> str:
    """Resample a clip's audio to 48 kHz stereo of exactly `duration`, or make that much silence."""
    if label_in is None:
        return f"anullsrc=r={AUDIO_RATE}:cl=stereo,atrim=0:{seconds(duration)}[{label_out}]"
    return (
        f"[{label_in}]aresample={AUDIO_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,"
        f"apad,atrim=0:{seconds(duration)},asetpts=PTS-STARTPTS[{label_out}]"
    )


def _pieces(plan: RenderPlan, chunk: Chunk | None, audio: bool) -> RenderPlan:
    """The plan as built for `only`: a chunk renders its frames of video alone, the audio piece its audio alone."""
    if chunk is not None:
        return replace(plan, duration=chunk.seconds(plan.frame_rate), frames=chunk.frames, outputs=("vout",), parts=[])
    if audio:
        # -vn before each input: unmapped, its video would still be decoded (3.9 CPU s of 4 for 3 min of 640x360).
        inputs = [argument for one in plan.input_arguments for argument in (["-vn", one] if one == "-i" else [one])]
        return replace(plan, input_arguments=inputs, outputs=("aout",), parts=[])
    return plan


def _multi_clip(params: MultiClipParams, clips, chunk: Chunk | None, audio: bool) -> RenderPlan:
    first = clips[params.clips[0].clip_id][1]
    width, height = params.output_size(first)
    rate = params.frame_rate
    inputs: list[str] = []
    chains: list[str] = []
    labels: list[str] = []
    total = 0.0
    timeline_frames = 0
    parts: list[Part] = []

    def video_chain(index: int, trim: str) -> str:
        return (
            f"[{index}:v]fps={rate}:start_time=0,scale={width}:{height}:force_original_aspect_ratio=decrease:flags=bicubic,"
            f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,format=yuv420p,"
            f"{trim},setpts=PTS-STARTPTS[v{index}]"
        )

    for entry in params.clips:
        path, facts = clips[entry.clip_id]
        end = min(entry.end, facts.duration)
        duration = end - entry.start
        total += duration
        window = Window.of(entry.start, duration, rate, None)
        whole_frames = window.frames
        kept = overlap(chunk, timeline_frames, whole_frames)
        timeline_frames += whole_frames
        if chunk is not None:
            if kept is None:
                continue
            window = Window.of(entry.start, duration, rate, kept)
        index = len(labels)
        inputs += [*window.input_arguments, "-i", str(path)]
        label = ""
        if not audio:
            chains.append(video_chain(index, window.trim))
            label += f"[v{index}]"
        if chunk is None:
            # As long as its frames, as the concat filter would pad it: the audio piece alone then stays in sync.
            lasting = whole_frames / rate
            chains.append(_audio_chain(f"{index}:a" if facts.has_audio else None, lasting, f"a{index}"))
            label += f"[a{index}]"
        labels.append(label)
        sampled = min(SAMPLE_SECONDS, duration)
        sample = ["-ss", seconds(entry.start), "-t", seconds(sampled), "-i", str(path)]
        trim = f"trim=duration={seconds(sampled)}"
        parts.append(Part(duration, [*sample, "-filter_complex", video_chain(0, trim), "-map", "[v0]"]))
    streams = {("vout", "aout"): "v=1:a=1[vout][aout]", ("vout",): "v=1:a=0[vout]", ("aout",): "v=0:a=1[aout]"}
    outputs = ("aout",) if audio else ("vout",) if chunk is not None else ("vout", "aout")
    chains.append(f"{''.join(labels)}concat=n={len(labels)}:{streams[outputs]}")
    return _pieces(RenderPlan(inputs, ";".join(chains), total, width, height, rate, parts=parts), chunk, audio)


def _centre_expression(keyframes, offset: float = 0.0) -> str:
    """
    Piecewise-linear horizontal centre over time (as a fraction of the width), in ffmpeg's expression language;
    `offset` is the clip's time at the filter's t = 0 (a chunk's).

    The segments are chosen by a balanced tree of if(lt(t,...)), so 200 keyframes nest 8 deep: a chain
    of ifs nested one per keyframe overflowed ffmpeg's parser past 92.
    """
    t = f"(t+{offset:.6f})" if offset else "t"
    points = [(keyframe.t, keyframe.x) for keyframe in keyframes]
    segments = [f"{x0:.6f}+({x1 - x0:.6f})*({t}-{t0:.6f})/{t1 - t0:.6f}" for (t0, x0), (t1, x1) in pairwise(points)]

    def choose(first: int, last: int) -> str:
        """The segment for t among segments[first:last], which start at points[first..last-1]."""
        if last - first == 1:
            return segments[first]
        middle = (first + last) // 2
        return f"if(lt({t},{points[middle][0]:.6f}),{choose(first, middle)},{choose(middle, last)})"

    after_last = f"{points[-1][1]:.6f}"
    inside = f"if(lt({t},{points[-1][0]:.6f}),{choose(0, len(segments))},{after_last})" if segments else after_last
    return f"if(lt({t},{points[0][0]:.6f}),{points[0][1]:.6f},{inside})"


def _one_clip_window(path: Path, facts: ClipFacts, chunk: Chunk | None) -> tuple[list[str], str, int]:
    """A one-clip kind's input arguments, its video chain's ending and skipped frames: the whole clip, or a chunk's."""
    if chunk is None:
        return ["-i", str(path)], "", 0
    window = Window.of(0.0, facts.duration, DEFAULT_FRAME_RATE, (chunk.first_frame, chunk.end_frame))
    return [*window.input_arguments, "-i", str(path)], f",{window.trim},setpts=PTS-STARTPTS", window.skipped_frames


def _framing(params: FramingParams, clips, chunk: Chunk | None, audio: bool) -> RenderPlan:
    path, facts = clips[params.clip_id]
    aspect = params.aspect_ratio
    if facts.width / facts.height > aspect:
        crop_height = even_within(facts.height)
        crop_width = even_within(crop_height * aspect)
    else:
        crop_width = even_within(facts.width)
        crop_height = even_within(crop_width / aspect)
    out_width, out_height = params.output_size
    inputs, trim, skipped = _one_clip_window(path, facts, chunk)
    centre = _centre_expression(params.keyframes, skipped / DEFAULT_FRAME_RATE)
    crop_x = f"max(0,min(in_w-{crop_width},({centre})*in_w-{crop_width}/2))"
    video = (
        f"[0:v]fps={DEFAULT_FRAME_RATE}:start_time=0,crop=w={crop_width}:h={crop_height}:x='{crop_x}':y=(in_h-{crop_height})/2,"
        f"scale={out_width}:{out_height}:flags=lanczos,setsar=1,format=yuv420p{trim}[vout]"
    )
    audio_chain = _audio_chain("0:a" if facts.has_audio else None, facts.duration, "aout")
    graph = audio_chain if audio else video if chunk is not None else f"{video};{audio_chain}"
    return _pieces(RenderPlan(inputs, graph, facts.duration, out_width, out_height), chunk, audio)


def _overlay(params: OverlayParams, clips, chunk: Chunk | None, audio: bool) -> RenderPlan:
    path, facts = clips[params.clip_id]
    width, height = even_within(facts.width), even_within(facts.height)
    inputs, trim, skipped = _one_clip_window(path, facts, chunk)
    audio_chain = _audio_chain("0:a" if facts.has_audio else None, facts.duration, "aout")
    if audio:
        return _pieces(RenderPlan(inputs, audio_chain, facts.duration, width, height), chunk, audio)
    frame = f"n+{skipped}" if skipped else "n"  # by frame number: a chunk's frames toggle exactly as the whole's
    rings: dict[tuple[int, str], list[int]] = {}
    for index, highlight in enumerate(params.highlights):
        radius = max(4, int(round(highlight.radius * height)))
        rings.setdefault((radius, highlight.color), []).append(index)
    chains = [f"[0:v]fps={DEFAULT_FRAME_RATE}:start_time=0,scale={width}:{height},setsar=1,format=yuv420p[base0]"]
    overlays: list[str] = []
    ring_labels: dict[int, str] = {}
    clip_frames = output_frames(facts.duration, DEFAULT_FRAME_RATE) + DEFAULT_FRAME_RATE  # a second to spare
    for (radius, color), uses in rings.items():
        outputs = "".join(f"[ring{use}]" for use in uses)
        chains.append(f"{_ring(radius, color, clip_frames)},split={len(uses)}{outputs}")
        ring_labels.update({use: f"ring{use}" for use in uses})
    for index, highlight in enumerate(params.highlights):
        radius = max(4, int(round(highlight.radius * height)))
        x = int(round(highlight.x * width)) - radius
        y = int(round(highlight.y * height)) - radius
        first, last = (
            math.ceil(highlight.start * DEFAULT_FRAME_RATE - 1e-6),
            math.floor(highlight.end * DEFAULT_FRAME_RATE + 1e-6),
        )
        enable = f"between({frame},{first},{last})"
        overlays.append(
            f"[base{index}][{ring_labels[index]}]overlay=x={x}:y={y}:enable='{enable}':shortest=1[base{index + 1}]"
        )
    last = len(params.highlights)
    chains += overlays
    chains.append(f"[base{last}]format=yuv420p{trim}[vout]")
    if chunk is None:
        chains.append(audio_chain)
    plan = RenderPlan(inputs, ";".join(chains), facts.duration, width, height)
    return _pieces(plan, chunk, audio)


def _ring(radius: int, color: str, frames: int) -> str:
    """
    A ring's image, drawn once and repeated by the loop filter: in the graph, not a PNG looped as an input
    (which ffmpeg decoded again for every frame: 9 % of an overlay render). As many frames as the clip can give
    and no more: looped for ever, a clip that gives none (truncated) left the overlay waiting for ever.
    """
    size = radius * 2 + 2
    thickness = max(3, radius // 8)
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    centre = size / 2
    alpha = f"if(between(hypot(X-{centre},Y-{centre}),{radius - thickness},{radius}),255,0)"
    drawn = f"color=c=black@0:s={size}x{size}:r={DEFAULT_FRAME_RATE},format=rgba"
    return f"{drawn},geq=r={red}:g={green}:b={blue}:a='{alpha}',trim=end_frame=1,loop=loop={frames}:size=1"


@dataclass(frozen=True)
class Encoder:
    """The video encoder a render used, and why it is not the one asked for when it is not."""

    name: str
    fallback_reason: str = ""

    def arguments(self) -> list[str]:
        if self.name == "h264_nvenc":
            return ["-c:v", "h264_nvenc", "-preset", "p5", "-rc", "vbr", "-cq", "21", "-b:v", "0"]
        return ["-c:v", "libx264", "-preset", os.environ.get("EXPORTS_X264_PRESET", "veryfast"), "-crf", "20"]


def choose_encoder() -> Encoder:
    """
    libx264 by default; EXPORTS_VIDEO_ENCODER=h264_nvenc where a GPU is attached (the Modal function sets it).

    NVENC needs the driver's video libraries inside the container as well as the GPU; without them every
    render would fail, so a one-frame trial encode decides, and libx264 renders instead.
    """
    wanted = os.environ.get("EXPORTS_VIDEO_ENCODER", "libx264")
    if wanted != "h264_nvenc":
        return Encoder("libx264")
    problem = _nvenc_problem(ffmpeg_executable())
    return Encoder("libx264", fallback_reason=f"h264_nvenc could not start: {problem}") if problem else Encoder(wanted)


@cache
def _nvenc_problem(ffmpeg: str) -> str:
    """Why NVENC cannot encode here ("" when it can); asked once per process, as a container keeps its GPU."""
    trial = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "color=size=256x256"]
    trial += ["-frames:v", "1", *Encoder("h264_nvenc").arguments(), "-f", "null", "-"]
    try:
        completed = subprocess.run(trial, capture_output=True, text=True, timeout=NVENC_TRIAL_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    if completed.returncode == 0:
        return ""
    # The first line names the cause ("Cannot load libcuda.so.1"); the rest is ffmpeg unwinding.
    first_line = completed.stderr.strip().partition("\n")[0]
    return re.sub(r"^(\[[^]]*\] )+", "", first_line)[:300] or f"ffmpeg exited with {completed.returncode}"


def part_costs(plan: RenderPlan) -> list[float]:
    """
    Each part's rendering seconds per media second, from encoding a sample of it as the render will (its
    content sets x264's pace: one clip can take three times another's): what the time-left estimate weighs
    the parts by. Empty when there is one part, or the samples would cost more than SAMPLES_SHARE.
    """
    if not plan.sampled:
        return []
    encoder = choose_encoder()
    costs = []
    for part in plan.parts:
        command = [ffmpeg_executable(), "-hide_banner", "-nostdin", "-loglevel", "error", "-nostats"]
        command += ["-progress", "pipe:1", *part.sample, *encoder.arguments(), "-f", "null", "-"]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        # ffmpeg's own speed counts from the first frame, not from the process's start and the inputs' probing.
        speeds = re.findall(r"^speed=\s*([0-9.]+)x", completed.stdout, flags=re.MULTILINE)
        if completed.returncode != 0 or not speeds or float(speeds[-1]) <= 0:
            return []  # a part that cannot be sampled will show in the render; the estimate goes unweighted
        costs.append(1 / float(speeds[-1]))
    return costs


def render(plan: RenderPlan, output: Path, on_progress: Callable[[float], None] | None = None) -> Encoder:
    """
    Run ffmpeg for the plan, calling on_progress(media seconds done) as ffmpeg reports it; say which encoder ran.
    A chunk's plan writes its frames of video alone, the audio piece's its audio alone (join puts them together).
    """
    encoder = choose_encoder()
    command = [ffmpeg_executable(), "-hide_banner", "-nostdin", "-loglevel", "error", "-nostats", "-progress", "pipe:1"]
    command += ["-y", *plan.input_arguments, "-filter_complex", plan.filter_graph]
    for label in plan.outputs:
        command += ["-map", f"[{label}]"]
    if "vout" in plan.outputs:
        command += [*encoder.arguments(), "-pix_fmt", "yuv420p", "-r", str(plan.frame_rate)]
    if "aout" in plan.outputs:
        command += ["-c:a", "aac", "-b:a", "160k", "-ar", str(AUDIO_RATE), "-ac", "2"]
    if plan.frames is not None:
        command += ["-frames:v", str(plan.frames)]
    command += ["-t", seconds(plan.duration)]
    if plan.outputs == ("vout", "aout"):
        command += ["-movflags", "+faststart"]
    written = _run([*command, str(output)], on_progress=on_progress)
    if plan.frames is not None and written != plan.frames:
        # ffmpeg ends an input that fails mid-read (a connection cut, a truncated file) as if it were its end,
        # and exits 0 with what it had: a chunk that short would be joined into the export as if whole.
        raise RenderError(f"ffmpeg wrote {written} of the {plan.frames} frames asked for: an input ended early.")
    return encoder


def join(chunks: list[Path], audio: Path, output: Path) -> None:
    """
    The chunks' video one after another, by stream copy (each starts on a keyframe), with the audio rendered
    once for the whole timeline: no join ever meets the audio, so AAC's priming and padding leave no gap.
    """
    listing = output.with_name(f"{output.stem}-chunks.txt")
    listing.write_text("".join(f"file '{chunk.resolve()}'\n" for chunk in chunks))
    command = [ffmpeg_executable(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    command += ["-f", "concat", "-safe", "0", "-i", str(listing), "-i", str(audio)]
    command += ["-map", "0:v", "-map", "1:a", "-c", "copy", "-movflags", "+faststart", str(output)]
    _run(command)


def _run(command: list[str], on_progress: Callable[[float], None] | None = None) -> int:
    """Run ffmpeg; the frames it reported writing, with -progress (else 0)."""
    with tempfile.TemporaryFile(mode="w+") as errors:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, text=True, bufsize=1
        )
        try:
            done = 0.0
            frames = 0
            for line in process.stdout:
                key, _, value = line.strip().partition("=")
                if key == "frame" and value.isdigit():
                    frames = int(value)
                elif key == "out_time_us" and value.lstrip("-").isdigit():
                    done = max(0, int(value)) / 1_000_000
                elif key == "progress" and on_progress:
                    # Every report, twice a second, even before the first frame is out (x264's lookahead holds
                    # seconds of frames): a caller that checks for a stop on_progress checks it all along.
                    on_progress(done)
        except BaseException:
            # Modal cancels by raising InputCancellation (a BaseException) in this thread; a store error in
            # on_progress or a SIGTERM turned into an exception lands here too. Waiting for ffmpeg would
            # keep the render (and the GPU it is billed on) going to the end: stop it first.
            process.kill()
            raise
        finally:
            process.stdout.close()
            code = process.wait()
        if code != 0:
            errors.seek(0)
            tail = " ".join(errors.read().strip().splitlines()[-3:])[:400]
            raise RenderError(f"ffmpeg exited with {code}: {tail or 'no output'}")
    return frames
