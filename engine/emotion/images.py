"""Images in, checked: photos (JPEG, PNG, WebP bytes) and frames (arrays) to gray pixels, and a face
cropped to the 48x48 gray pixels training saw.

An image's size is read from its header before anything is decoded (a small file declaring a
huge image costs no memory), and only :data:`MAX_DECODES` decode at once. What cannot be used
is an :class:`EmotionInputError` whose message says why.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from .dataset import IMAGE_SIZE

MAX_PIXELS = 40_000_000  # 40 MP: larger inputs are refused, not decoded
MAX_DECODES = 2  # images decoded at once: each may take MAX_PIXELS x 3 bytes and more
DECODE_WAIT_S = 30.0  # how long a decode waits for a free slot before saying "busy"

_decode_slots = threading.BoundedSemaphore(MAX_DECODES)


class EmotionInputError(ValueError):
    """An image that cannot be analysed; the message says why."""


def to_gray(image, color_order: str = "bgr") -> np.ndarray:
    """Gray uint8 image from an array (gray, BGR/RGB, BGRA/RGBA) or encoded bytes.

    Args:
        image: ``np.ndarray`` (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), or the bytes
            of a JPEG, PNG or WebP file.
        color_order: 'bgr' (OpenCV, webcam frames) or 'rgb' (PIL, browsers).
    """
    if isinstance(image, (bytes, bytearray, memoryview)):
        image, color_order = decode_image(image), "bgr"
    if not isinstance(image, np.ndarray):
        raise EmotionInputError(f"Expected an image array or image bytes, got {type(image).__name__}.")
    if image.size == 0 or image.ndim < 2 or image.shape[0] == 0 or image.shape[1] == 0:
        raise EmotionInputError(f"The image is empty (shape {image.shape}).")
    if image.shape[0] * image.shape[1] > MAX_PIXELS:
        raise EmotionInputError(
            f"The image is too large ({image.shape[1]}x{image.shape[0]} pixels); "
            f"the limit is {MAX_PIXELS // 1_000_000} megapixels. Resize it first."
        )
    if image.dtype != np.uint8:
        if np.issubdtype(image.dtype, np.floating) and image.max(initial=0) <= 1.0:
            image = image * 255.0
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return np.ascontiguousarray(image)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise EmotionInputError(f"Unsupported image shape {image.shape}: use gray, 3 or 4 channels.")
    rgb_first = color_order.lower() == "rgb"
    if image.shape[2] == 4:
        code = cv2.COLOR_RGBA2GRAY if rgb_first else cv2.COLOR_BGRA2GRAY
    else:
        code = cv2.COLOR_RGB2GRAY if rgb_first else cv2.COLOR_BGR2GRAY
    return cv2.cvtColor(image, code)


def decode_image(data, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """The pixels of JPEG, PNG or WebP bytes, refused from the header alone when too large.

    The size is read from the file's header (:func:`image_header`) before OpenCV sees the
    bytes, so a small file declaring a huge image costs no memory; at most
    :data:`MAX_DECODES` images decode at once. ``cv2.IMREAD_COLOR`` (the default) gives
    BGR, turned upright as its EXIF orientation says.
    """
    data = bytes(data)
    if not data:
        raise EmotionInputError("The image is empty (0 bytes). Upload a JPEG, PNG or WebP photo.")
    kind, width, height = image_header(data)
    if width * height > MAX_PIXELS:
        raise EmotionInputError(
            f"The image is too large ({width}x{height} pixels); the limit is "
            f"{MAX_PIXELS // 1_000_000} megapixels. Resize it first."
        )
    if not _decode_slots.acquire(timeout=DECODE_WAIT_S):
        raise EmotionInputError("Too many photos are being read at once. Try again in a moment.")
    try:
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error:  # OpenCV's own checks; the header said otherwise
        decoded = None
    finally:
        _decode_slots.release()
    if decoded is None or decoded.size == 0:
        raise _corrupt(kind)
    return decoded


def image_header(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) of JPEG, PNG or WebP bytes, read from the header, nothing decoded.

    Other formats, and headers that cannot be read, raise :class:`EmotionInputError`.
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        kind, size = "PNG", _png_size(data)
    elif data[:3] == b"\xff\xd8\xff":
        kind, size = "JPEG", _jpeg_size(data)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        kind, size = "WebP", _webp_size(data)
    else:
        raise EmotionInputError(
            "These bytes are not a JPEG, PNG or WebP image. Upload a photo in one of those formats."
        )
    if size is None or min(size) <= 0:
        raise _corrupt(kind)
    return (kind, *size)


def _corrupt(kind: str) -> EmotionInputError:
    return EmotionInputError(f"The image could not be decoded (corrupt or truncated {kind} file). Try another photo.")


def _png_size(data: bytes) -> tuple[int, int] | None:
    """From IHDR, which must be the first chunk."""
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


_JPEG_NO_LENGTH = {0x01, *range(0xD0, 0xD8)}  # TEM, RST0-7: markers without a segment
_JPEG_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # not DHT, JPG, DAC


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """From the first frame header (SOFn), walking the segments as libjpeg does."""
    i, n = 2, len(data)
    while True:
        i = data.find(b"\xff", i)  # bytes between segments are skipped, as libjpeg does
        if i < 0:
            return None
        while i < n and data[i] == 0xFF:  # fill bytes
            i += 1
        if i + 2 >= n:
            return None
        marker, i = data[i], i + 1
        if marker == 0x00 or marker in _JPEG_NO_LENGTH:  # 0xFF00: a stuffed byte, not a marker
            continue
        if marker in (0xD8, 0xD9, 0xDA):  # SOI again, EOI or a scan before any frame header
            return None
        if marker in _JPEG_SOF:
            if i + 7 > n:
                return None
            return int.from_bytes(data[i + 5 : i + 7], "big"), int.from_bytes(data[i + 3 : i + 5], "big")
        length = int.from_bytes(data[i : i + 2], "big")
        if length < 2:
            return None
        i += length


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """From the first chunk: VP8 (lossy), VP8L (lossless) or VP8X (the canvas of extended files)."""
    if len(data) < 30:
        return None
    chunk, body = data[12:16], data[20:30]
    if chunk == b"VP8 " and body[3:6] == b"\x9d\x01\x2a":
        return (int.from_bytes(body[6:8], "little") & 0x3FFF, int.from_bytes(body[8:10], "little") & 0x3FFF)
    if chunk == b"VP8L" and body[0] == 0x2F:
        bits = int.from_bytes(body[1:5], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(body[4:7], "little") + 1, int.from_bytes(body[7:10], "little") + 1
    return None


def crop_face(gray: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """48x48 crop of ``box`` = (x, y, w, h): rows y..y+h, columns x..x+w."""
    x, y, w, h = (int(v) for v in box)
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(gray.shape[1], x + w), min(gray.shape[0], y + h)
    if x1 <= x0 or y1 <= y0:
        raise EmotionInputError(f"Face box {box} lies outside the {gray.shape[1]}x{gray.shape[0]} image.")
    face = gray[y0:y1, x0:x1]
    interp = cv2.INTER_AREA if min(face.shape) >= IMAGE_SIZE else cv2.INTER_LINEAR
    return cv2.resize(face, (IMAGE_SIZE, IMAGE_SIZE), interpolation=interp)
