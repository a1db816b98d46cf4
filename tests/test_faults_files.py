"""Decompression bombs and damaged files: huge images and inflating zip members are refused
from their headers, corrupt members end in a DataError naming zip and member (issue 23, items 6-7)."""

from __future__ import annotations

import inspect
import json
import struct
import subprocess
import sys
import threading
import zipfile
import zlib

import cv2
import numpy as np
import pytest

from conftest import REPO, cli_env, generate_movielens, write_release
from engine.data.movielens import DataError, load_movielens
from engine.emotion import images
from engine.emotion.images import EmotionInputError, decode_image, image_header, to_gray


# ---------------------------------------------------------------------- images
def bomb_png(width: int, height: int, complete: bool = True) -> bytes:
    """A gray PNG of width x height black pixels: a few MB, however large the image.
    ``complete=False``: the header and the start of the pixel data only."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    packer = zlib.compressobj(1)
    row = bytes(1 + width)  # filter byte + pixels
    pixels = b"".join(packer.compress(row) for _ in range(height if complete else 1))
    pixels += packer.flush() if complete else b""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", pixels)
        + (chunk(b"IEND", b"") if complete else b"")
    )


def bomb_jpeg(width: int, height: int) -> bytes:
    """SOI, a JFIF segment and a baseline frame header declaring width x height; no pixels."""
    jfif = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00"
    return b"\xff\xd8" + jfif + sof + b"\xff\xda"


def bomb_webp(width: int, height: int) -> bytes:
    """An extended (VP8X) WebP declaring a width x height canvas; no image data."""
    body = b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    chunk = b"VP8X" + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def lossless_webp_header(width: int, height: int) -> bytes:
    bits = (width - 1) | (height - 1) << 14
    body = b"\x2f" + bits.to_bytes(4, "little") + bytes(16)
    return b"RIFF" + struct.pack("<I", 12 + len(body)) + b"WEBPVP8L" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize(
    "data, size",
    [
        (bomb_png(60000, 60000, complete=False), "60000x60000"),
        (bomb_png(20000, 20000, complete=False), "20000x20000"),
        (bomb_jpeg(60000, 60000), "60000x60000"),
        (bomb_jpeg(7000, 6000), "7000x6000"),
        (bomb_webp(60000, 60000), "60000x60000"),
        (lossless_webp_header(16384, 16384), "16384x16384"),
    ],
    ids=["png-60k", "png-20k", "jpeg-60k", "jpeg-42mp", "webp-vp8x-60k", "webp-vp8l-16k"],
)
def test_huge_images_refused_from_the_header(data, size):
    """The size comes from the header: these files hold no pixels at all, yet the answer is
    "too large", never OpenCV's CV_IO_MAX_IMAGE_PIXELS error or "corrupt"."""
    with pytest.raises(EmotionInputError, match=rf"too large \({size} pixels\); the limit is 40 megapixels"):
        to_gray(data)


@pytest.mark.slow
def test_png_bomb_costs_no_memory():
    """A valid 1.7 MB PNG of 20000x20000 pixels (400 MB decoded) is refused without decoding:
    the process's peak memory does not grow (it grew by about 600 MB when decoded first)."""
    script = (
        inspect.getsource(bomb_png)
        + """
import json, resource
from engine.emotion.images import EmotionInputError, to_gray
png = bomb_png(20000, 20000)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    to_gray(png)
    message = None
except EmotionInputError as exc:
    message = str(exc)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"bytes": len(png), "message": message, "grown_kib": grown}))
"""
    )
    out = subprocess.run(
        [sys.executable, "-c", "import struct, zlib\n" + script],
        env=cli_env(),
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["bytes"] < 4 << 20
    assert "too large (20000x20000 pixels)" in result["message"]
    assert result["grown_kib"] < 50 << 10, result  # under 50 MiB, against 400 MB decoded


def test_header_sizes_agree_with_opencv():
    """The header parser reads what OpenCV decodes, for the encodings cameras and browsers make."""
    rng = np.random.default_rng(0)
    for width, height in ((1, 1), (37, 5), (333, 401)):
        img = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        for ext, params in (
            (".jpg", []),
            (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
            (".jpg", [cv2.IMWRITE_JPEG_RST_INTERVAL, 2]),
            (".png", []),
            (".webp", []),
            (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]),
        ):
            data = cv2.imencode(ext, img, params)[1].tobytes()
            kind, w, h = image_header(data)
            assert (w, h) == (width, height) and decode_image(data).shape == (height, width, 3), (ext, params)
    # a JPEG whose EXIF/ICC segments come before the frame header; bytes between segments skipped
    plain = cv2.imencode(".jpg", np.zeros((20, 30, 3), np.uint8))[1].tobytes()
    padded = plain[:2] + b"\xff\xe1" + struct.pack(">H", 5002) + b"\xff\xc0" * 2500 + b"\x12\x00" + plain[2:]
    assert image_header(padded) == ("JPEG", 30, 20) and decode_image(padded).shape == (20, 30, 3)
    # a scan before any frame header, or a PNG without IHDR first: corrupt, not decoded
    with pytest.raises(EmotionInputError, match="corrupt or truncated JPEG"):
        image_header(b"\xff\xd8\xff\xda\x00\x08" + bytes(20))
    with pytest.raises(EmotionInputError, match="corrupt or truncated PNG"):
        image_header(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x04tEXt" + bytes(20))


def test_decodes_at_once_are_bounded(monkeypatch):
    """At most MAX_DECODES images decode at once; one more waits, then says the server is busy."""
    data = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    monkeypatch.setattr(images, "DECODE_WAIT_S", 0.05)
    held = [images._decode_slots.acquire(blocking=False) for _ in range(images.MAX_DECODES)]
    try:
        assert all(held) and not images._decode_slots.acquire(blocking=False)
        with pytest.raises(EmotionInputError, match="Too many photos are being read at once"):
            to_gray(data)
    finally:
        for _ in held:
            images._decode_slots.release()
    results = []
    threads = [threading.Thread(target=lambda: results.append(to_gray(data).shape)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [(8, 8)] * 6


# ---------------------------------------------------------------------- dataset zips
def deflated_release(tmp_path, **members):
    """A generated release as a deflated zip (``write_release`` stores), ``members`` replaced."""
    path = tmp_path / "ml-test.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in {**generate_movielens(), **members}.items():
            zf.writestr(f"ml-test/{name}", text)
    return path


def _big_tags(n_bytes: int) -> str:
    row = "1,1,funny,1100000000\r\n"
    return "userId,movieId,tag,timestamp\r\n" + row * (n_bytes // len(row))


def test_member_inflating_past_the_limit_is_refused(tmp_path, monkeypatch):
    """A 50 MB tags.csv (a 0.2 MB zip) against MAX_MEMBER_MB=10: refused from the size the zip
    declares, before anything is inflated, naming zip and member and the setting."""
    monkeypatch.setenv("MAX_MEMBER_MB", "10")
    path = deflated_release(tmp_path, **{"tags.csv": _big_tags(50 << 20)})
    assert path.stat().st_size < 1 << 20
    with pytest.raises(DataError) as err:
        load_movielens(path)
    message = str(err.value)
    assert str(path) in message and "ml-test/tags.csv is 50 MiB uncompressed" in message
    assert "10 MiB limit" in message and "MAX_MEMBER_MB" in message


def test_folder_file_past_the_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("MAX_MEMBER_MB", "1")
    files = generate_movielens()
    files["tags.csv"] = _big_tags(2 << 20)
    folder = write_release(tmp_path / "release", files, as_zip=False)
    with pytest.raises(DataError, match=r"tags.csv is 2 MiB uncompressed, over the 1 MiB limit"):
        load_movielens(folder)
    monkeypatch.setenv("MAX_MEMBER_MB", "3")  # a limit above it reads it
    assert len(load_movielens(folder).tags) == (2 << 20) // len("1,1,funny,1100000000\r\n")


def _local_data_offset(raw: bytes, info: zipfile.ZipInfo) -> int:
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
    return info.header_offset + 30 + name_len + extra_len


def test_forged_size_header_is_caught(tmp_path, monkeypatch):
    """The central directory says tags.csv is 1 kB; its data inflates to 50 MB. zipfile stops at
    the declared size and the CRC-32 check fails: a DataError naming zip and member."""
    monkeypatch.setenv("MAX_MEMBER_MB", "10")
    path = deflated_release(tmp_path, **{"tags.csv": _big_tags(50 << 20)})
    raw = bytearray(path.read_bytes())
    info = zipfile.ZipFile(path).getinfo("ml-test/tags.csv")
    central = raw.index(b"PK\x01\x02", info.header_offset + info.compress_size)  # the central directory
    while raw[central + 46 : central + 46 + len(info.filename)] != info.filename.encode():
        central = raw.index(b"PK\x01\x02", central + 4)
    raw[central + 24 : central + 28] = struct.pack("<I", 1000)  # uncompressed size
    raw[info.header_offset + 22 : info.header_offset + 26] = struct.pack("<I", 1000)  # and the local copy
    path.write_bytes(bytes(raw))
    assert zipfile.ZipFile(path).getinfo("ml-test/tags.csv").file_size == 1000
    with pytest.raises(DataError) as err:
        load_movielens(path)
    message = str(err.value)
    assert f"{path}: member ml-test/tags.csv is corrupt (BadZipFile: Bad CRC-32" in message
    assert "download it again (`python -m engine fetch`)" in message


def test_corrupt_byte_in_a_member(tmp_path):
    """One changed byte inside ratings.csv's compressed data: zlib's "invalid distance too far
    back" (or a kin) becomes a DataError naming zip and member, not a traceback."""
    path = deflated_release(tmp_path)
    raw = bytearray(path.read_bytes())
    info = zipfile.ZipFile(path).getinfo("ml-test/ratings.csv")
    start = _local_data_offset(raw, info)
    stream = bytes(raw[start : start + info.compress_size])
    for k in range(100, len(stream)):  # the first byte whose flip zlib rejects (not just the CRC)
        try:
            zlib.decompressobj(-15).decompress(stream[:k] + bytes([stream[k] ^ 0xFF]) + stream[k + 1 :])
        except zlib.error:
            raw[start + k] ^= 0xFF
            break
    else:
        pytest.fail("no single-byte corruption that zlib rejects")
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError) as err:
        load_movielens(path)
    message = str(err.value)
    assert f"{path}: member ml-test/ratings.csv is corrupt (error: Error -3 while decompressing" in message
    assert "download it again (`python -m engine fetch`)" in message
    assert isinstance(err.value.__cause__, zlib.error)


def test_bzip2_member_refused(tmp_path):
    """bzip2 and LZMA members inflate whole chunks at once (no bound): refused, with what to do."""
    path = tmp_path / "ml-bz.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_BZIP2) as zf:
        for name, text in generate_movielens().items():
            zf.writestr(f"ml-bz/{name}", text)
    with pytest.raises(
        DataError,
        match=r"ml-bz/ratings.csv is compressed with method 12; only stored "
        r"and deflated members",
    ):
        load_movielens(path)


@pytest.mark.slow
def test_out_of_memory_is_a_data_error(tmp_path):
    """Too little memory for a release (here: a 22 MB ratings.csv under a 100 MB address-space
    limit) ends in a DataError naming the release, not a MemoryError traceback."""
    rows = "".join(f"{i // 100 + 1},{i % 100 + 1},3.5,1000000000\n" for i in range(1_000_000))
    movies = "movieId,title,genres\n" + "".join(f"{j},Movie {j} (1999),Drama\n" for j in range(1, 101))
    path = tmp_path / "ml-big.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ml-big/ratings.csv", "userId,movieId,rating,timestamp\n" + rows)
        zf.writestr("ml-big/movies.csv", movies)
    script = f"""
import json, resource
from engine.data.movielens import DataError, load_movielens
size = int(next(line for line in open("/proc/self/status") if line.startswith("VmSize")).split()[1]) << 10
resource.setrlimit(resource.RLIMIT_AS, (size + (100 << 20), resource.RLIM_INFINITY))
try:
    load_movielens({str(path)!r})
    print(json.dumps(None))
except DataError as exc:
    print(json.dumps(str(exc)))
"""
    out = subprocess.run([sys.executable, "-c", script], env=cli_env(), capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    message = json.loads(out.stdout.strip().splitlines()[-1])
    assert message and message.startswith(str(path)) and "not enough memory to load it" in message
    assert "Use a machine with more memory or a smaller release" in message
