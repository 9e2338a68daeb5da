"""
The video pipeline: one ffmpeg run per export, reporting media time as it goes.

Imports no Django: it runs in a Modal container and in a local worker alike.
Every kind produces H.264 / AAC (48 kHz stereo) in an MP4 with even dimensions
and a constant frame rate. ffmpeg applies rotation metadata itself (autorotate),
the `fps` filter turns variable frame rates into constant ones, and clips
without audio get silence so that every output has an audio track.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from itertools import pairwise
from pathlib import Path

from .media import ffmpeg_executable
from .schema import ClipFacts, FramingParams, MultiClipParams, OverlayParams, Strict

AUDIO_RATE = 48000
DEFAULT_FRAME_RATE = 30
NVENC_TRIAL_SECONDS = 30
# Each part of a multi-part render is sampled for its pace (part_costs): this much of it, if the samples
# together stay under SAMPLES_SHARE of the whole render's media (so a short export is never slowed down).
SAMPLE_SECONDS = 1.0
SAMPLES_SHARE = 0.03


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
    prepare: list[list[str]] = field(default_factory=list)  # ffmpeg runs that make helper inputs first
    parts: list[Part] = field(default_factory=list)  # in timeline order; none: one part, at one pace

    @property
    def sampled(self) -> bool:
        """Whether part_costs samples the parts: more than one, at a cost of at most SAMPLES_SHARE."""
        return len(self.parts) > 1 and len(self.parts) * SAMPLE_SECONDS <= SAMPLES_SHARE * self.duration


def even_within(value: float) -> int:
    """Largest even size that fits in `value` (for crops, which cannot exceed the source)."""
    return max(2, int(value) // 2 * 2)


def seconds(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"


def build_plan(kind: str, params: Strict, clips: Mapping[int, tuple[Path, ClipFacts]], work_dir: Path) -> RenderPlan:
    if isinstance(params, MultiClipParams):
        return _multi_clip(params, clips)
    if isinstance(params, FramingParams):
        return _framing(params, clips)
    if isinstance(params, OverlayParams):
        return _overlay(params, clips, work_dir)
    raise ValueError(f"No pipeline for {kind!r}.")


def _audio_chain(label_in: str | None, duration: float, label_out: str) -> str:
    """Resample a clip's audio to 48 kHz stereo of exactly `duration`, or make that much silence."""
    if label_in is None:
        return f"anullsrc=r={AUDIO_RATE}:cl=stereo,atrim=0:{seconds(duration)}[{label_out}]"
    return (
        f"[{label_in}]aresample={AUDIO_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,"
        f"apad,atrim=0:{seconds(duration)},asetpts=PTS-STARTPTS[{label_out}]"
    )


def _multi_clip(params: MultiClipParams, clips) -> RenderPlan:
    first = clips[params.clips[0].clip_id][1]
    width, height = params.output_size(first)
    rate = params.frame_rate
    inputs: list[str] = []
    chains: list[str] = []
    labels: list[str] = []
    total = 0.0
    parts: list[Part] = []

    def video_chain(index: int, duration: float) -> str:
        return (
            f"[{index}:v]fps={rate},scale={width}:{height}:force_original_aspect_ratio=decrease:flags=bicubic,"
            f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,format=yuv420p,"
            f"trim=duration={seconds(duration)},setpts=PTS-STARTPTS[v{index}]"
        )

    for index, entry in enumerate(params.clips):
        path, facts = clips[entry.clip_id]
        end = min(entry.end, facts.duration)
        duration = end - entry.start
        total += duration
        inputs += ["-ss", seconds(entry.start), "-t", seconds(duration), "-i", str(path)]
        chains.append(video_chain(index, duration))
        chains.append(_audio_chain(f"{index}:a" if facts.has_audio else None, duration, f"a{index}"))
        labels.append(f"[v{index}][a{index}]")
        sampled = min(SAMPLE_SECONDS, duration)
        sample = ["-ss", seconds(entry.start), "-t", seconds(sampled), "-i", str(path)]
        parts.append(Part(duration, [*sample, "-filter_complex", video_chain(0, sampled), "-map", "[v0]"]))
    chains.append(f"{''.join(labels)}concat=n={len(params.clips)}:v=1:a=1[vout][aout]")
    return RenderPlan(inputs, ";".join(chains), total, width, height, rate, parts=parts)


def _centre_expression(keyframes) -> str:
    """
    Piecewise-linear horizontal centre over time (as a fraction of the width), in ffmpeg's expression language.

    The segments are chosen by a balanced tree of if(lt(t,...)), so 200 keyframes nest 8 deep: a chain
    of ifs nested one per keyframe overflowed ffmpeg's parser past 92.
    """
    points = [(keyframe.t, keyframe.x) for keyframe in keyframes]
    segments = [f"{x0:.6f}+({x1 - x0:.6f})*(t-{t0:.6f})/{t1 - t0:.6f}" for (t0, x0), (t1, x1) in pairwise(points)]

    def choose(first: int, last: int) -> str:
        """The segment for t among segments[first:last], which start at points[first..last-1]."""
        if last - first == 1:
            return segments[first]
        middle = (first + last) // 2
        return f"if(lt(t,{points[middle][0]:.6f}),{choose(first, middle)},{choose(middle, last)})"

    after_last = f"{points[-1][1]:.6f}"
    inside = f"if(lt(t,{points[-1][0]:.6f}),{choose(0, len(segments))},{after_last})" if segments else after_last
    return f"if(lt(t,{points[0][0]:.6f}),{points[0][1]:.6f},{inside})"


def _framing(params: FramingParams, clips) -> RenderPlan:
    path, facts = clips[params.clip_id]
    aspect = params.aspect_ratio
    if facts.width / facts.height > aspect:
        crop_height = even_within(facts.height)
        crop_width = even_within(crop_height * aspect)
    else:
        crop_width = even_within(facts.width)
        crop_height = even_within(crop_width / aspect)
    out_width, out_height = params.output_size
    centre = _centre_expression(params.keyframes)
    crop_x = f"max(0,min(in_w-{crop_width},({centre})*in_w-{crop_width}/2))"
    video = (
        f"[0:v]fps={DEFAULT_FRAME_RATE},crop=w={crop_width}:h={crop_height}:x='{crop_x}':y=(in_h-{crop_height})/2,"
        f"scale={out_width}:{out_height}:flags=lanczos,setsar=1,format=yuv420p[vout]"
    )
    audio = _audio_chain("0:a" if facts.has_audio else None, facts.duration, "aout")
    return RenderPlan(["-i", str(path)], f"{video};{audio}", facts.duration, out_width, out_height)


def _overlay(params: OverlayParams, clips, work_dir: Path) -> RenderPlan:
    path, facts = clips[params.clip_id]
    width, height = even_within(facts.width), even_within(facts.height)
    inputs = ["-i", str(path)]
    prepare: list[list[str]] = []
    rings: dict[tuple[int, str], list[int]] = {}
    for index, highlight in enumerate(params.highlights):
        radius = max(4, int(round(highlight.radius * height)))
        rings.setdefault((radius, highlight.color), []).append(index)
    chains = [f"[0:v]fps={DEFAULT_FRAME_RATE},scale={width}:{height},setsar=1,format=yuv420p[base0]"]
    overlays: list[str] = []
    ring_labels: dict[int, str] = {}
    for input_index, ((radius, color), uses) in enumerate(rings.items(), start=1):
        image = work_dir / f"ring-{input_index}.png"
        prepare.append(_ring_image_arguments(image, radius, color))
        inputs += ["-loop", "1", "-framerate", str(DEFAULT_FRAME_RATE), "-i", str(image)]
        outputs = "".join(f"[ring{use}]" for use in uses)
        chains.append(f"[{input_index}:v]format=rgba,split={len(uses)}{outputs}")
        ring_labels.update({use: f"ring{use}" for use in uses})
    for index, highlight in enumerate(params.highlights):
        radius = max(4, int(round(highlight.radius * height)))
        x = int(round(highlight.x * width)) - radius
        y = int(round(highlight.y * height)) - radius
        enable = f"between(t,{seconds(highlight.start)},{seconds(highlight.end)})"
        overlays.append(
            f"[base{index}][{ring_labels[index]}]overlay=x={x}:y={y}:enable='{enable}':shortest=1[base{index + 1}]"
        )
    last = len(params.highlights)
    chains += overlays
    chains.append(f"[base{last}]format=yuv420p[vout]")
    chains.append(_audio_chain("0:a" if facts.has_audio else None, facts.duration, "aout"))
    return RenderPlan(inputs, ";".join(chains), facts.duration, width, height, prepare=prepare)


def _ring_image_arguments(image: Path, radius: int, color: str) -> list[str]:
    size = radius * 2 + 2
    thickness = max(3, radius // 8)
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    centre = size / 2
    alpha = f"if(between(hypot(X-{centre},Y-{centre}),{radius - thickness},{radius}),255,0)"
    graph = f"color=c=black@0:s={size}x{size},format=rgba,geq=r={red}:g={green}:b={blue}:a='{alpha}'"
    return ["-f", "lavfi", "-i", graph, "-frames:v", "1", "-update", "1", str(image)]


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
    """Run ffmpeg for the plan, calling on_progress(media seconds done) as ffmpeg reports it; say which encoder ran."""
    encoder = choose_encoder()
    for arguments in plan.prepare:
        _run([ffmpeg_executable(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *arguments])
    command = [
        ffmpeg_executable(),
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-nostats",
        "-progress",
        "pipe:1",
        "-y",
        *plan.input_arguments,
        "-filter_complex",
        plan.filter_graph,
        "-map",
        "[vout]",
        "-map",
        "[aout]",
        *encoder.arguments(),
        "-pix_fmt",
        "yuv420p",
        "-r",
        str(plan.frame_rate),
        "-c:a",
        "aac",
        "-b:a",
        "160k",
        "-ar",
        str(AUDIO_RATE),
        "-ac",
        "2",
        "-t",
        seconds(plan.duration),
        "-movflags",
        "+faststart",
        str(output),
    ]
    _run(command, on_progress=on_progress)
    return encoder


def _run(command: list[str], on_progress: Callable[[float], None] | None = None) -> None:
    with tempfile.TemporaryFile(mode="w+") as errors:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, text=True, bufsize=1
        )
        try:
            for line in process.stdout:
                key, _, value = line.strip().partition("=")
                if key == "out_time_us" and on_progress and value.lstrip("-").isdigit():
                    on_progress(max(0, int(value)) / 1_000_000)
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
