"""Each unit's personal upload link: an opaque token that names the campaign and unit, signed, with an expiry.

The token carries no secret and reveals nothing a unit does not already know (its own code); it is signed with the
campaign's secret, so it cannot be forged or turned into another unit's link. A wrong, altered or expired token
simply does not verify: the upload page answers 404 without saying which of these it was.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

LINK_GRACE_DAYS = 90  # late units still need their link long after the deadline


@dataclass(frozen=True)
class UploadLink:
    campaign_id: int
    unit_code: str
    expires: date  # valid through this day (UTC)


def link_expiry(deadline: date, grace_days: int = LINK_GRACE_DAYS) -> date:
    return deadline + timedelta(days=grace_days)


def make_token(link: UploadLink, secret: str) -> str:
    """'<payload>.<signature>', both base64url without padding: safe in a URL path and in e-mail."""
    payload = f"{link.campaign_id}\x1f{link.unit_code}\x1f{link.expires.isoformat()}".encode()
    return f"{_b64(payload)}.{_b64(_mac(payload, secret))}"


def read_token(token: str) -> UploadLink | None:
    """The link a token claims to be, unverified (the caller looks up the campaign's secret, then verifies)."""
    try:
        payload_b64, _ = token.split(".", 1)
        campaign_id, unit_code, expires = _unb64(payload_b64).decode("utf-8").split("\x1f")
        return UploadLink(int(campaign_id), unit_code, date.fromisoformat(expires))
    except (ValueError, UnicodeDecodeError):
        return None


def verify_token(token: str, secret: str, now: datetime | None = None) -> UploadLink | None:
    """The link, if the token is intact, signed with this secret and not expired; otherwise None."""
    link = read_token(token)
    if link is None:
        return None
    payload_b64, signature_b64 = token.split(".", 1)
    try:
        signature = _unb64(signature_b64)
    except ValueError:
        return None
    if not hmac.compare_digest(_mac(_unb64(payload_b64), secret), signature):
        return None
    moment = now or datetime.now(UTC)
    if moment > datetime.combine(link.expires, time.max, tzinfo=UTC):
        return None
    return link


def upload_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/u/{token}"


def _mac(payload: bytes, secret: str) -> bytes:
    return hmac.new(f"upload-link\x1f{secret}".encode(), payload, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or any(c not in _B64_CHARS for c in text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
