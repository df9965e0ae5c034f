"""The signed identity block of an issued workbook: which campaign, year, unit and form version it belongs to.

The block sits in a hidden sheet as key/value rows. Its HMAC (keyed with the campaign's secret) covers every
field, so editing the unit code or the year, or copying the block from another workbook, breaks the signature.
"""

from __future__ import annotations

import hashlib
import hmac

from pydantic import BaseModel, ConfigDict

IDENTITY_SHEET = "_nianbao"


class WorkbookIdentity(BaseModel):
    model_config = ConfigDict(frozen=True)

    form_id: str
    form_version: str
    year: int
    campaign_id: int
    unit_code: str

    def payload(self) -> bytes:
        fields = (self.form_id, self.form_version, str(self.year), str(self.campaign_id), self.unit_code)
        return "\x1f".join(fields).encode("utf-8")


def sign(identity: WorkbookIdentity, secret: str) -> str:
    """Hex HMAC-SHA256 of the identity under the campaign secret."""
    return hmac.new(secret.encode("utf-8"), identity.payload(), hashlib.sha256).hexdigest()


def verify(identity: WorkbookIdentity, signature: str, secret: str) -> bool:
    # compared as bytes: the signature read from a returned file may be any text, and compare_digest raises
    # TypeError on a str holding a non-ASCII character
    return hmac.compare_digest(sign(identity, secret).encode("ascii"), signature.encode("utf-8", "surrogatepass"))


def identity_rows(identity: WorkbookIdentity, secret: str) -> list[tuple[str, str]]:
    """The rows of the hidden identity sheet, signature last."""
    rows = [(name, str(value)) for name, value in identity.model_dump().items()]
    return [*rows, ("signature", sign(identity, secret))]
