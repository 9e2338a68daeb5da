"""
What a call can be, the one list: the web app's ExportKind, both backends and the Modal app follow it.
A module of its own, importing nothing, so that the local executor's supervisor (local_worker.py), which
starts a process for every call and chunk, does not build the payload models to learn them.
"""

KINDS = ("multi_clip", "framing_ai", "overlay")
CHUNK_KIND = "chunk"  # not an export: one chunk of a chunked export's video, spawned by the export (chunks.py)
