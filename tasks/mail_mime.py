"""MIME messages built with their headers already encoded and folded, and written out without the email package's
generator: the same bytes as `message.as_bytes(policy=SMTP)`, in a fraction of the time.

Why: with the SMTP policy every header is stored as a parsed header object and re-folded by
email._header_value_parser at every as_bytes() (about 40% of the cost of an answer mail). Here each header value is
stored raw (Message.set_raw), already in its wire form: RFC 2047 base64 encoded-words of whole UTF-8 characters
(no character split across two words, so each decodes on its own), folded at 78 columns, which the SMTP policy
writes out as is. Attachment names are RFC 2231 encoded. The result is still an EmailMessage: reading a header
parses it as usual, and to_bytes() falls back to the generator for anything it does not build itself.
"""

from __future__ import annotations

import base64
import binascii
import re
import string
import uuid
from collections.abc import Sequence
from email.message import EmailMessage, Message, MIMEPart
from email.policy import SMTP
from typing import Any

MAX_LINE = 78  # RFC 5322 recommended line length: SMTP policy's max_line_length
MAX_WORD = 75  # RFC 2047: an encoded-word is at most 75 characters
_CHROME = len("=?utf-8?b??=")
# an address the fast path writes as is; anything else goes through email.headerregistry.Address (which checks it)
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_SAFE_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*")  # an ASCII display name needing no quotes
_BOUNDARY = re.compile(r'boundary="([^"]+)"')
_NEWLINES = re.compile(r"\r\n|\r|\n")
_ATTR_CHARS = frozenset(string.ascii_letters + string.digits + "!#$&+-.^_`|~")  # RFC 2231 attribute-char


def text_header(name: str, value: str) -> str:
    """A header value in wire form: as is when plain ASCII that fits, else folded RFC 2047 encoded-words."""
    _no_linebreak(value)
    if value.isascii() and "=?" not in value and len(name) + 2 + len(value) <= MAX_LINE:
        return value
    if value.isascii() and "=?" not in value:
        return value  # long plain ASCII: the SMTP policy folds it at its spaces when written (rare)
    folder = _Folder(name)
    for word in _encoded_words(value, folder.room()):
        folder.add(word)
    return folder.value()


def address_header(name: str, addresses: Sequence[tuple[str, str]]) -> str | None:
    """To/Cc/From in wire form, display names RFC 2047 encoded; None when an address is not plain ASCII
    local@domain (the caller then uses email.headerregistry.Address, which checks and encodes it)."""
    folder = _Folder(name)
    for n, (display, addr) in enumerate(addresses):
        _no_linebreak(display)
        if not _PLAIN_ADDRESS.fullmatch(addr):
            return None
        tail = "," if n < len(addresses) - 1 else ""
        if not display:
            folder.add(addr + tail)
            continue
        if display.isascii() and "=?" not in display:
            phrase = display if _SAFE_PHRASE.fullmatch(display) else _quoted(display)
            folder.add(f"{phrase} <{addr}>{tail}")
            continue
        for word in _encoded_words(display, folder.room()):
            folder.add(word)
        folder.add(f"<{addr}>{tail}")
    return folder.value()


def text_part(subtype: str, text: str) -> MIMEPart:
    """A text/plain or text/html part, UTF-8, base64 (CRLF line ends, as EmailMessage.set_content makes it)."""
    part = MIMEPart(policy=SMTP)
    part.set_raw("Content-Type", f'text/{subtype}; charset="utf-8"')
    part.set_raw("Content-Transfer-Encoding", "base64")
    part.set_payload(_base64(b"\r\n".join(text.encode("utf-8").splitlines()) + b"\r\n"))
    return part


def attachment_part(data: bytes, maintype: str, subtype: str, filename: str) -> MIMEPart:
    """A base64 attachment; its file name RFC 2231 encoded (UTF-8, percent-escaped, continued over lines)."""
    _no_linebreak(filename)
    part = MIMEPart(policy=SMTP)
    part.set_raw("Content-Type", f"{maintype}/{subtype}")
    part.set_raw("Content-Transfer-Encoding", "base64")
    part.set_raw("Content-Disposition", _disposition(filename))
    part.set_payload(_base64(data))
    return part


def multipart(subtype: str, parts: list[MIMEPart]) -> MIMEPart:
    """A multipart/<subtype> part holding these parts."""
    container = MIMEPart(policy=SMTP)
    set_multipart(container, subtype, parts)
    return container


def set_multipart(container: MIMEPart, subtype: str, parts: list[MIMEPart]) -> None:
    """Make the container (a message with its headers, or a part) a multipart/<subtype> of the parts.

    Its boundary cannot occur in the parts: every part body is base64, whose alphabet has no '_'.
    """
    container.set_raw("Content-Type", f'multipart/{subtype};\r\n boundary="=_{uuid.uuid4().hex}"')
    container.set_payload(list(parts))


class OutgoingMessage(EmailMessage):
    """A message that also keeps, unparsed, whom it is for and its subject (reading them back from the encoded
    headers would parse them again)."""

    def __init__(self, recipients: Sequence[str], subject: str) -> None:
        super().__init__(policy=SMTP)
        self.recipients = list(recipients)
        self.subject = subject


def new_message(headers: Sequence[tuple[str, str]], recipients: Sequence[str], subject: str) -> OutgoingMessage:
    """A message with these headers (wire form, see text_header/address_header) and MIME-Version."""
    message = OutgoingMessage(recipients, subject)
    for name, value in headers:
        message.set_raw(name, value)
    message.set_raw("MIME-Version", "1.0")
    return message


def to_bytes(message: Message) -> bytes:
    """The message's bytes, exactly as message.as_bytes(policy=SMTP) writes them.

    Walks the parts itself (the generator parses Content-Type and Content-Transfer-Encoding several times per
    part); anything it does not handle (8-bit or binary bodies, preambles, message/* or signed parts) is left to
    the generator.
    """
    out: list[bytes] = []
    if _write(message, out):
        return b"".join(out)
    return message.as_bytes(policy=SMTP)


def _write(part: Message, out: list[bytes]) -> bool:
    # not get_payload(): it parses the Content-Transfer-Encoding header of every part
    payload: Any = part._payload  # type: ignore[attr-defined]  # noqa: SLF001
    body: bytes
    if isinstance(payload, list):
        if part.preamble is not None or part.epilogue is not None:
            return False
        ctype, boundary = _content_type(part)
        if not ctype.startswith("multipart/") or ctype == "multipart/signed" or not boundary:
            return False
        texts = []
        for sub in payload:
            sub_out: list[bytes] = []
            if not isinstance(sub, Message) or not _write(sub, sub_out):
                return False
            texts.append(b"".join(sub_out))
        mark = boundary.encode("ascii")
        body = b"--" + mark + b"\r\n" + (b"\r\n--" + mark + b"\r\n").join(texts) + b"\r\n--" + mark + b"--\r\n"
    elif payload is None:
        body = b""
    elif isinstance(payload, str) and payload.isascii():
        if _content_type(part)[0].startswith("message/"):
            return False
        # the generator's line-end conversion; a plain replace gives the same when there is no CR (base64 bodies)
        body = (_NEWLINES.sub("\r\n", payload) if "\r" in payload else payload.replace("\n", "\r\n")).encode("ascii")
    else:
        return False
    for name, value in part.raw_items():
        out.append(SMTP.fold_binary(name, value))
    out.append(b"\r\n")
    out.append(body)
    return True


def _content_type(part: Message) -> tuple[str, str | None]:
    """The content type and boundary, from the raw header when it is ours, else from the parsed header."""
    for name, value in part.raw_items():
        if name.lower() != "content-type":
            continue
        if isinstance(value, str):
            found = _BOUNDARY.search(value)
            return value.split(";", 1)[0].strip().lower(), found.group(1) if found else None
        return part.get_content_type(), part.get_boundary()
    return part.get_content_type(), None


class _Folder:
    """Lays tokens on header lines of at most 78 characters, breaking only between tokens."""

    def __init__(self, name: str) -> None:
        self.prefix = len(name) + 1  # "Name:" and then each token after a space
        self.lines: list[str] = []
        self.line = ""
        self.length = self.prefix

    def room(self) -> int:
        """Columns left on the current line for the next token (after its space)."""
        return MAX_LINE - self.length - 1

    def add(self, token: str) -> None:
        if self.line and self.length + 1 + len(token) > MAX_LINE:
            self.lines.append(self.line)
            self.line, self.length = "", 0
        self.line = f"{self.line} {token}" if self.line or self.lines else token
        self.length += 1 + len(token)

    def value(self) -> str:
        return "\r\n".join([*self.lines, self.line])


def _encoded_words(text: str, first_room: int) -> list[str]:
    """Base64 encoded-words of whole characters: the first fits first_room columns (or starts a new line)."""
    limit = _word_bytes(first_room if first_room >= _CHROME + 8 else MAX_WORD)
    words: list[str] = []
    start, size = 0, 0
    for end, char in enumerate(text):
        code = ord(char)
        width = 1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4  # its UTF-8 bytes
        if end > start and size + width > limit:
            words.append(_word(text[start:end].encode("utf-8")))
            start, size, limit = end, 0, _word_bytes(MAX_WORD)
        size += width
    if start < len(text):
        words.append(_word(text[start:].encode("utf-8")))
    return words


def _word_bytes(columns: int) -> int:
    """How many bytes a base64 encoded-word of at most this many columns (and at most 75) can carry."""
    return (min(columns, MAX_WORD) - _CHROME) // 4 * 3


def _word(data: bytes) -> str:
    return f"=?utf-8?b?{base64.b64encode(data).decode('ascii')}?="


def _quoted(phrase: str) -> str:
    return '"' + phrase.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _disposition(filename: str) -> str:
    if filename.isascii() and _SAFE_PHRASE.fullmatch(filename) and " " not in filename:
        return f'attachment; filename="{filename}"' if len(filename) < 50 else _continued(filename)
    return _continued(filename)


def _continued(filename: str) -> str:
    """RFC 2231 filename*0*=utf-8''..; filename*1*=..; each line within 78 columns, split between characters
    (some clients decode each piece on its own)."""
    pieces: list[str] = []
    piece = "utf-8''"
    for char in filename:
        escaped = char if char in _ATTR_CHARS else "".join(f"%{b:02X}" for b in char.encode("utf-8"))
        if len(f" filename*{len(pieces)}*={piece}{escaped};") > MAX_LINE and piece != "utf-8''":
            pieces.append(piece)
            piece = ""
        piece += escaped
    pieces.append(piece)
    return "attachment;\r\n" + ";\r\n".join(f" filename*{n}*={piece}" for n, piece in enumerate(pieces))


def _base64(data: bytes) -> str:
    """Base64 in lines of 76 columns, each ending in a newline: what the email package writes."""
    encoded = binascii.b2a_base64(data, newline=False).decode("ascii")
    return "".join(f"{encoded[i:i + 76]}\n" for i in range(0, len(encoded), 76))


def _no_linebreak(value: str) -> None:
    if "\r" in value or "\n" in value:  # as EmailMessage refuses them: a line break would start a new header
        raise ValueError("Header values may not contain linefeed or carriage return characters")
