"""
Owner-checked media responses.

Views check ownership first, then call `media_response`. On the filesystem the
file is served here with HTTP Range support (browsers seek in `<video>` with
Range requests); on S3/R2 the browser is redirected to a presigned URL made
fresh for each request, so a link in a page left open for hours never expires.
"""

from django.http import HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.utils.http import content_disposition_header
from werkzeug.datastructures import Range
from werkzeug.http import parse_range_header

CHUNK_BYTES = 64 * 1024


def media_response(request, field_file, *, content_type: str, filename: str, as_attachment: bool = False):
    storage = field_file.storage
    disposition = content_disposition_header(as_attachment, filename)
    if not _is_local(storage):
        # S3Storage signs for its own querystring_expire (MEDIA_URL_EXPIRE_SECONDS).
        url = storage.url(
            field_file.name,
            parameters={"ResponseContentDisposition": disposition, "ResponseContentType": content_type},
        )
        return HttpResponseRedirect(url)
    path = storage.path(field_file.name)
    size = storage.size(field_file.name)
    byte_range = _requested_range(request, size)
    if byte_range == "unsatisfiable":
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    start, stop = byte_range or (0, size)
    body = iter(()) if request.method == "HEAD" else _read(path, start, stop)  # HEAD: the headers GET would send
    response = StreamingHttpResponse(body, content_type=content_type)
    response["Content-Length"] = str(stop - start)
    response["Accept-Ranges"] = "bytes"
    response["Content-Disposition"] = disposition
    response["Cache-Control"] = "private, max-age=3600"
    if byte_range:
        response.status_code = 206
        response["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    return response


def _is_local(storage) -> bool:
    try:
        storage.path("")
    except NotImplementedError:
        return False
    return True


def _requested_range(request, size: int):
    """Return (start, stop) for one satisfiable range, "unsatisfiable", or None to send it all."""
    header = request.headers.get("Range")
    if not header:
        return None
    parsed: Range | None = parse_range_header(header)
    if parsed is None or len(parsed.ranges) != 1:
        return None  # malformed or multipart ranges: RFC 9110 lets us send the whole file
    start, stop = parsed.ranges[0]
    if start < 0 and size > 0:
        # A suffix range longer than the file means the whole file (RFC 9110, 14.1.2), not 416.
        return max(0, size + start), size
    bounds = parsed.range_for_length(size)
    return bounds if bounds is not None else "unsatisfiable"


def _read(path, start: int, stop: int):
    with open(path, "rb") as media_file:
        media_file.seek(start)
        remaining = stop - start
        while remaining > 0:
            chunk = media_file.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
