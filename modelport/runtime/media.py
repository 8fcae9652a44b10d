"""Images from request bodies: raw bytes, base64 or a data: URI. URLs are refused, never fetched."""

from __future__ import annotations

import base64
import binascii
import io
import re
from typing import Any

from .errors import InputError

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
MAX_PIXELS = 50_000_000


def decode_image(value: Any) -> Any:
    """A PIL RGB image from bytes, base64 text or a data: URI."""
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
    elif isinstance(value, str) and value.strip():
        raw = _from_text(value.strip())
    else:
        raise InputError("an image input must be image bytes, a base64 string or a data: URI")
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(raw))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError):
        raise InputError("the input is not an image Pillow can read (PNG, JPEG, ...)") from None
    if image.width * image.height > MAX_PIXELS:
        raise InputError(f"the image has more than {MAX_PIXELS} pixels", 413)
    try:
        return image.convert("RGB")
    except (OSError, Image.DecompressionBombError, ValueError):
        raise InputError("the image data is truncated or corrupt") from None


def _from_text(text: str) -> bytes:
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        if ";base64" not in header:
            raise InputError("a data: URI image must be base64-encoded (data:image/png;base64,...)")
    elif _URL.match(text):
        raise InputError("image URLs are not fetched: send the image bytes, base64 or a data: URI")
    try:
        return base64.b64decode(re.sub(r"\s+", "", text), validate=True)
    except (binascii.Error, ValueError):
        raise InputError("the image is not valid base64") from None
