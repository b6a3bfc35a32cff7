"""The decode path on its own: every odd file becomes pixels or a domain error, never anything else."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from app.errors import InvalidImage, PayloadTooLarge, ServiceError, UnsupportedMediaType
from app.images import decode_image

LIMIT = 40_000_000


def encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def test_cmyk_jpeg_becomes_rgb() -> None:
    rgb = decode_image(encode(Image.new("CMYK", (32, 24), (0, 255, 255, 0)), "JPEG"), LIMIT)
    assert rgb.shape == (24, 32, 3) and rgb[0, 0, 0] > 200 and rgb[0, 0, 1] < 60


def quadrants() -> Image.Image:
    """48x32, a different colour in each quarter: any wrong turn or flip moves them."""
    pixels = np.zeros((32, 48, 3), np.uint8)
    pixels[:16, :24], pixels[:16, 24:], pixels[16:, :24], pixels[16:, 24:] = (250, 0, 0), (0, 250, 0), (0, 0, 250), 90
    return Image.fromarray(pixels)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_is_turned_upright_as_pillow_turns_it(orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(quadrants(), "JPEG", quality=95, exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    rgb = decode_image(data, LIMIT)
    assert rgb.shape == expected.shape and rgb.flags.c_contiguous
    assert np.abs(rgb.astype(int) - expected).max() <= 8


def test_jpeg_is_decoded_without_pillow_copying_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import simplejpeg

    calls = []
    decode = simplejpeg.decode_jpeg

    def counted(data: bytes, **kwargs: object) -> np.ndarray:
        calls.append(len(data))
        return decode(data, **kwargs)

    monkeypatch.setattr("app.images.simplejpeg.decode_jpeg", counted)
    data = encode(Image.new("L", (40, 30), 90), "JPEG")
    rgb = decode_image(data, LIMIT)
    assert calls == [len(data)] and rgb.shape == (30, 40, 3) and abs(int(rgb[0, 0, 1]) - 90) <= 2


def test_sixteen_bit_png_is_scaled_to_eight_bits() -> None:
    pixels = np.full((16, 16), 65535, np.uint16)
    pixels[:8] = 0
    rgb = decode_image(encode(Image.fromarray(pixels), "PNG"), LIMIT)
    assert rgb.dtype == np.uint8 and rgb[0, 0, 0] == 0 and rgb[15, 0, 0] == 255


def test_animated_gif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (20, 20), c) for c in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    rgb = decode_image(data, LIMIT)
    assert rgb[0, 0, 0] > 200 and rgb[0, 0, 2] < 50


def test_rgba_is_composited_on_white() -> None:
    rgb = decode_image(encode(Image.new("RGBA", (8, 8), (0, 0, 0, 0)), "PNG"), LIMIT)
    assert (rgb == 255).all()


@pytest.mark.parametrize("size", [(1, 1), (20000, 2)])
def test_degenerate_sizes_decode(size: tuple[int, int]) -> None:
    assert decode_image(encode(Image.new("RGB", size), "PNG"), LIMIT).shape == (size[1], size[0], 3)


def test_header_only_jpeg_is_invalid() -> None:
    data = encode(Image.new("RGB", (64, 64)), "JPEG")
    with pytest.raises(InvalidImage):
        decode_image(data[:200], LIMIT)


def test_truncated_png_is_invalid() -> None:
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), "PNG")
    with pytest.raises(InvalidImage):
        decode_image(data[: len(data) // 2], LIMIT)


def zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", "hello")
    return buf.getvalue()


@pytest.mark.parametrize(
    "data",
    [b"<!doctype html><html></html>", b"%PDF-1.7\n%\xe2\xe3", b"plain text", zip_bytes(), bytes(range(256))],
    ids=["html", "pdf", "text", "zip", "random"],
)
def test_non_images_are_unsupported(data: bytes) -> None:
    with pytest.raises(UnsupportedMediaType):
        decode_image(data, LIMIT)


def test_too_many_pixels_is_refused_from_the_header() -> None:
    with pytest.raises(PayloadTooLarge):
        decode_image(encode(Image.new("L", (200, 200)), "PNG"), max_pixels=10_000)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096), st.sampled_from([b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM"]))
def test_arbitrary_bytes_never_escape_as_anything_but_a_domain_error(data: bytes, prefix: bytes) -> None:
    try:
        rgb = decode_image(prefix + data, LIMIT)
    except ServiceError:
        return
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 400), st.integers(0, 255))
def test_corrupting_a_real_jpeg_never_escapes(cut: int, flip: int) -> None:
    data = bytearray(encode(Image.new("RGB", (40, 30), (10, 200, 30)), "JPEG"))
    if cut < len(data):
        data[cut] ^= flip
    try:
        rgb = decode_image(bytes(data), LIMIT)
    except ServiceError:
        return  # a domain error is the other allowed outcome; anything else fails the test
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and min(rgb.shape[:2]) >= 1 and rgb.dtype == np.uint8


def test_decoding_is_prepared_at_startup_not_by_the_first_photo() -> None:
    """In a fresh interpreter: Pillow's plugins (which the first photo used to import, ~25 ms) are registered and
    freed blocks are kept for reuse once prepare_decoding has run, and not before."""
    import subprocess
    import sys

    script = (
        "from PIL import Image\n"
        "from app.images import prepare_decoding\n"
        "before = ('WEBP' in Image.OPEN, Image.core.get_blocks_max())\n"
        "prepare_decoding(8)\n"
        "print(before, ('WEBP' in Image.OPEN, Image.core.get_blocks_max()))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["(False,", "0)", "(True,", "8)"]
