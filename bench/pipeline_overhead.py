"""
Figure 6: each export kind on the demo clips, the whole worker (inputs from
the store, helper images, ffmpeg with progress, probe, upload, records)
against the single best hand-written ffmpeg command that makes the same video
from the same files with the same encoder settings. Each is run RUNS times;
the ratio is of the medians. The outputs are probed to be the same size and
length, so the baseline does not win by doing less.
"""

from __future__ import annotations

import io
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from modal_jobs.kinds import KINDS
from modal_jobs.media import ffmpeg_executable, probe
from modal_jobs.pipeline import choose_encoder

RUNS = 3
GOAL = 1.05  # the worker's time over the hand-written command's, per kind
AUDIO = ["-c:a", "aac", "-b:a", "160k", "-ar", "48000", "-ac", "2"]
ENCODING = [*choose_encoder().arguments(), "-pix_fmt", "yuv420p", *AUDIO]
FRAMING = {
    "aspect": "9:16",
    "height": 1280,
    "keyframes": [{"t": 0, "x": 0.3}, {"t": 10, "x": 0.7}, {"t": 20, "x": 0.5}],
}
RING = {"x": 0.5, "y": 0.5, "radius": 0.1, "color": "#FFD400"}


def demo_clips() -> list:
    from django.core.management import call_command

    from projects.models import Clip

    call_command("seed_demo", stdout=io.StringIO())
    return list(Clip.objects.filter(project__owner__username="demo").order_by("pk"))


def params_for(kind: str, clips) -> dict:
    if kind == "multi_clip":
        return {"clips": [{"clip_id": clip.pk, "start": 0, "end": clip.duration} for clip in clips]}
    if kind == "framing_ai":
        return {"clip_id": clips[0].pk, **FRAMING}
    highlights = [{**RING, "start": 2, "end": 8}, {**RING, "x": 0.3, "start": 10, "end": 16}]
    return {"clip_id": clips[0].pk, "highlights": highlights}


def hand_written(kind: str, clips, output: Path) -> list[str]:
    """What an ffmpeg expert would type for this export, knowing the demo clips (720p30, 48 kHz audio)."""
    paths = [str(clip.media.path) for clip in clips]
    ffmpeg = [ffmpeg_executable(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    if kind == "multi_clip":
        inputs = [argument for path in paths for argument in ("-i", path)]
        streams = "".join(f"[{n}:v][{n}:a]" for n in range(len(paths)))
        graph = f"{streams}concat=n={len(paths)}:v=1:a=1[v][a]"
        return [*ffmpeg, *inputs, "-filter_complex", graph, "-map", "[v]", "-map", "[a]", *ENCODING,
                "-movflags", "+faststart", str(output)]  # fmt: skip
    if kind == "framing_ai":
        from modal_jobs.pipeline import _centre_expression
        from modal_jobs.schema import FramingParams

        centre = _centre_expression(FramingParams.model_validate({"clip_id": 1, **FRAMING}).keyframes)
        crop = f"crop=w=404:h=720:x='max(0,min(in_w-404,({centre})*in_w-404/2))':y=0"
        return [*ffmpeg, "-i", paths[0], "-vf", f"{crop},scale=720:1280:flags=lanczos,setsar=1", *ENCODING,
                "-movflags", "+faststart", str(output)]  # fmt: skip
    radius, thickness = 72, 9
    size, centre = radius * 2 + 2, radius + 1
    ring = (
        f"color=c=black@0:s={size}x{size}:d=1,format=rgba,"
        f"geq=r=255:g=212:b=0:a='if(between(hypot(X-{centre},Y-{centre}),{radius - thickness},{radius}),255,0)',"
        "loop=loop=-1:size=1"
    )
    graph = (
        f"{ring},split[r1][r2];"
        f"[0:v][r1]overlay=x={640 - radius}:y={360 - radius}:enable='between(t,2,8)':shortest=1[o1];"
        f"[o1][r2]overlay=x={384 - radius}:y={360 - radius}:enable='between(t,10,16)':shortest=1[v]"
    )
    return [*ffmpeg, "-i", paths[0], "-filter_complex", graph, "-map", "[v]", "-map", "0:a", *ENCODING,
            "-movflags", "+faststart", str(output)]  # fmt: skip


def payload_for(kind: str, params: dict, clips) -> dict:
    """The payload the app would spawn for this export (a fresh job id each run)."""
    from exports.models import ExportJob
    from exports.services import build_payload

    return build_payload(ExportJob(project_id=clips[0].project_id, kind=kind, params=params))


def run() -> dict:
    from exports.storage import object_store
    from modal_jobs.worker import run_export

    clips = demo_clips()
    store = object_store()
    results = {}
    for kind in KINDS:
        params = params_for(kind, clips)
        pipeline_seconds, hand_seconds = [], []
        for _ in range(RUNS):
            started = time.perf_counter()
            result = run_export(payload_for(kind, params, clips), store=store, call_id=f"local-{uuid.uuid4().hex}")
            pipeline_seconds.append(time.perf_counter() - started)
            if result["status"] != "success":
                raise RuntimeError(f"The {kind} export failed: {result}")
            with tempfile.TemporaryDirectory() as scratch:
                output = Path(scratch) / "output.mp4"
                started = time.perf_counter()
                subprocess.run(hand_written(kind, clips, output), check=True, timeout=300)
                hand_seconds.append(time.perf_counter() - started)
                baseline = probe(output)
            ours = probe(store.path(result["output_key"]))
            same = (ours.display_width, ours.display_height) == (baseline.display_width, baseline.display_height)
            if not same or abs(ours.duration - baseline.duration) > 0.1:
                raise RuntimeError(f"{kind}: the baseline made a different video: {baseline} vs {ours}")
        results[kind] = {
            "pipeline_seconds": statistics.median(pipeline_seconds),
            "hand_written_seconds": statistics.median(hand_seconds),
            "ratio": statistics.median(pipeline_seconds) / statistics.median(hand_seconds),
            "output": f"{ours.display_width}x{ours.display_height}, {ours.duration:.1f} s",
        }
    return results
