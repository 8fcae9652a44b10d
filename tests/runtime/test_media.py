"""Images from request bodies: bytes, base64 or data: URIs; never fetched from a URL."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from modelport.runtime import media
from modelport.runtime.errors import InputError
from modelport.runtime.media import decode_image


def image_bytes(mode: str = "RGBA", size: tuple[int, int] = (3, 2), fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color=(10, 20, 30, 255) if mode == "RGBA" else 7).save(buffer, fmt)
    return buffer.getvalue()


PNG = image_bytes()
B64 = base64.b64encode(PNG).decode()


@pytest.mark.parametrize(
    "value",
    [
        PNG,
        bytearray(PNG),
        B64,
        f"  {B64}\n",
        base64.encodebytes(PNG).decode(),  # MIME base64: line breaks inside
        f"data:image/png;base64,{B64}",
        f"data:;base64,{B64}",
    ],
)
def test_an_image_decodes_to_rgb(value):
    image = decode_image(value)
    assert isinstance(image, Image.Image)
    assert (image.mode, image.size) == ("RGB", (3, 2))
    assert image.getpixel((0, 0)) == (10, 20, 30)


@pytest.mark.parametrize("mode", ["L", "P", "1", "CMYK"])
def test_every_mode_becomes_rgb(mode):
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    assert decode_image(image_bytes(mode, fmt=fmt)).mode == "RGB"


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "https://example.com/cat.png",
        "file:///etc/passwd",
        "  FTP://host/x.png",
        "s3://bucket/key.png",
    ],
)
def test_urls_are_refused_not_fetched(url):
    with pytest.raises(InputError, match="not fetched") as caught:
        decode_image(url)
    assert caught.value.status == 422


def test_a_data_uri_must_be_base64():
    with pytest.raises(InputError, match="must be base64-encoded"):
        decode_image("data:image/png,%89PNG")
    with pytest.raises(InputError, match="not valid base64"):
        decode_image("data:image/png;base64,not base64!")


@pytest.mark.parametrize("text", ["not base64!", "abc", "//host/x.png", B64[:-2] + "*="])
def test_text_that_is_not_base64_is_refused(text):
    with pytest.raises(InputError, match="not valid base64"):
        decode_image(text)


@pytest.mark.parametrize(
    "value",
    [
        b"garbage bytes",
        b"",
        base64.b64encode(b"garbage bytes").decode(),
        PNG[: len(PNG) // 2],  # truncated: the header reads, the pixels do not
    ],
)
def test_bytes_that_are_not_an_image_are_refused(value):
    with pytest.raises(InputError, match="not an image") as caught:
        decode_image(value)
    assert caught.value.status == 422


@pytest.mark.parametrize("value", [42, None, ["x"], {"image": "x"}, "", "   "])
def test_other_values_are_refused(value):
    with pytest.raises(InputError, match="image bytes, a base64 string or a data: URI"):
        decode_image(value)


def test_an_image_over_the_pixel_limit_is_too_large(monkeypatch):
    monkeypatch.setattr(media, "MAX_PIXELS", 100)
    decode_image(image_bytes(size=(10, 10)))  # at the limit
    with pytest.raises(InputError, match="more than 100 pixels") as caught:
        decode_image(image_bytes(size=(11, 10)))
    assert caught.value.status == 413
