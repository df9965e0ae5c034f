"""Read an upload form's body as it streams in, and stop as soon as it is larger than allowed.

Nothing past the limit is read: a declared Content-Length over it is refused before the body is touched, and a
body without one (chunked) is counted as it arrives. Form parsing is Starlette's streaming multipart parser, which
spools the file to a temporary file past 1 MB.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

FORM_OVERHEAD = 64 * 1024  # the multipart framing and the small fields around the file


class TooLarge(Exception):
    """The body is larger than the limit allows."""

    def __init__(self, size: int | None) -> None:
        super().__init__(f"upload larger than allowed ({size if size is not None else 'unknown'} bytes)")
        self.size = size  # the declared size, when the client declared one


class BadForm(Exception):
    """The body is not the upload form."""


@dataclass(frozen=True)
class UploadForm:
    csrf: str | None
    file_name: str
    data: bytes


async def read_upload(request: Request, max_file_bytes: int) -> UploadForm:
    """The form's CSRF field and file, read within max_file_bytes; TooLarge or BadForm otherwise."""
    limit = max_file_bytes + FORM_OVERHEAD
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(int(declared))
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise BadForm("not multipart/form-data")
    parser = MultiPartParser(request.headers, _limited(request, limit), max_files=1, max_fields=4)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise BadForm(str(exc)) from exc
    try:
        csrf = form.get("csrf")
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return UploadForm(csrf if isinstance(csrf, str) else None, "", b"")
        data = await upload.read(max_file_bytes + 1)
        if len(data) > max_file_bytes:
            raise TooLarge(None)
        return UploadForm(csrf if isinstance(csrf, str) else None, upload.filename, data)
    finally:
        await form.close()


async def _limited(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise TooLarge(None)
        yield chunk
