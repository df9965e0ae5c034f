"""CSRF protection for the upload form without server-side sessions: a double-submit cookie whose value is also
signed into the form, bound to the unit's link.

The page sets a random nonce as a SameSite=Strict cookie and puts '<nonce>.<HMAC(link token, nonce)>' into a hidden
field. A POST must carry both, matching: another site can neither read nor set the cookie, and cannot compute the
field's signature without the campaign's secret. The Origin (or Referer) header, when the browser sends one, must
name this site as well.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from urllib.parse import urlsplit

COOKIE = "nianbao_csrf"
FIELD = "csrf"
_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def valid_nonce(value: str | None) -> bool:
    return value is not None and bool(_NONCE.match(value))


def form_value(nonce: str, link_token: str, secret: str) -> str:
    """The hidden field's value for this nonce and link."""
    return f"{nonce}.{_sign(nonce, link_token, secret)}"


def check(field: str | None, cookie: str | None, link_token: str, secret: str) -> bool:
    """True if the form field and the cookie carry the same nonce and the field is signed for this link."""
    if not field or not valid_nonce(cookie) or "." not in field:
        return False
    nonce, signature = field.split(".", 1)
    assert cookie is not None
    return hmac.compare_digest(nonce, cookie) and hmac.compare_digest(signature, _sign(nonce, link_token, secret))


def same_origin(origin: str | None, referer: str | None, host: str | None, public_url: str = "") -> bool:
    """False if the browser says the request comes from another site (Origin first, else Referer).

    Our own site is the Host the request names, or the public address of the page (NIANBAO_PORTAL_BASE_URL): a
    reverse proxy may pass its own upstream address as Host while the browser names the public one.
    """
    ours = {h.lower() for h in (host, urlsplit(public_url).netloc) if h}
    if not ours:
        return False
    if origin is not None:
        return origin != "null" and urlsplit(origin).netloc.lower() in ours
    if referer:
        return urlsplit(referer).netloc.lower() in ours
    return True  # neither header: not a browser's cross-site form post (the cookie check still applies)


def _sign(nonce: str, link_token: str, secret: str) -> str:
    mac = hmac.new(f"portal-csrf\x1f{secret}".encode(), f"{link_token}\x1f{nonce}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")
