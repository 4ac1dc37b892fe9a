"""Fuzz pass over the image reader and ``predict``: random bytes, sizes from 1 px to 8k px, every PIL mode, damaged
files and odd extensions. Every case must end cleanly: a converted RGB uint8 image, or a ``DataError`` naming the
file (never another exception); ``predict`` on all of them exits 0 or 1 with one reason per failed file and never
a traceback. Deterministic (fixed seed) and bounded (about a hundred files; ``predict`` gets a third of them)."""

from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepmt.cli import main
from deepmt.data.io import read_image
from deepmt.errors import DataError

SIDES = (1, 2, 3, 7, 16, 63, 64, 255, 1000, 4097, 8192)
#: PIL format -> the extension it is normally stored under
FORMATS = {"PNG": ".png", "TIFF": ".tif", "JPEG": ".jpg", "BMP": ".bmp", "WEBP": ".webp", "GIF": ".gif"}
ODD_EXTENSIONS = (".JPG", ".jpeg", ".png", ".tiff", ".txt", "", ".png.gz", ".jpg.part")


def _random_image(rng: np.random.Generator, mode: str, w: int, h: int) -> Image.Image:
    raw = len(Image.new(mode, (1, 1)).tobytes())  # bytes per pixel (0-1 for mode "1")
    size = len(Image.new(mode, (w, 1)).tobytes()) * h if raw else (w + 7) // 8 * h
    im = Image.frombytes(mode, (w, h), rng.integers(0, 256, size, dtype=np.uint8).tobytes())
    if mode in ("P", "PA"):
        im.putpalette(rng.integers(0, 256, 768, dtype=np.uint8).tobytes())
    return im


def _huge_png_header(w: int, h: int) -> bytes:
    """A PNG that claims to be ``w`` x ``h`` (a decompression bomb) and holds no pixels."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))  # noqa: E731
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def fuzz_files(folder: Path, seed: int = 0) -> list[Path]:
    """Write the fuzz cases into ``folder`` (deterministic for a seed) and return their paths."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []

    def write(name: str, data: bytes) -> None:
        path = folder / name
        path.write_bytes(data)
        files.append(path)

    # every PIL mode, in every format that can store it, at random sizes (one side up to 8k, area bounded)
    for k, mode in enumerate(Image.MODES):
        for fmt, ext in FORMATS.items():
            w, h = (int(s) for s in rng.choice(SIDES, 2))
            if w * h > 60_000:
                h = max(1, 60_000 // w)
            buf = io.BytesIO()
            try:
                _random_image(rng, mode, w, h).save(buf, format=fmt)
            except (OSError, ValueError, KeyError, TypeError):
                continue  # PIL cannot write this mode in this format: nothing to read
            data = buf.getvalue()
            odd = rng.random() < 0.25
            write(f"m{k:02d}_{mode.replace(';', '-')}_{w}x{h}{rng.choice(ODD_EXTENSIONS) if odd else ext}", data)
            if rng.random() < 0.3:  # the same file damaged: truncated, or bytes flipped in its middle
                cut = bytearray(data[: max(1, int(len(data) * rng.uniform(0.05, 0.95)))])
                if rng.random() < 0.5 and len(data) > 64:
                    cut = bytearray(data)
                    i = int(rng.integers(16, len(data) - 8))
                    cut[i : i + 8] = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
                write(f"m{k:02d}_{mode.replace(';', '-')}_damaged{ext}", bytes(cut))
    # random bytes under image extensions, and a few headers with random bodies
    for i in range(12):
        n = int(rng.choice([1, 7, 100, 5000]))
        write(f"noise{i}{rng.choice(list(FORMATS.values()) + list(ODD_EXTENSIONS))}", rng.integers(0, 256, n, dtype=np.uint8).tobytes())
    for i, magic in enumerate((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"II*\x00", b"MM\x00*", b"BM", b"GIF89a", b"RIFF")):
        write(f"header{i}.img", magic + rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
    write("bomb.png", _huge_png_header(60_000, 60_000))
    # the extremes in size, cheap to encode: 8k x 8k, 1 x 8k, 8k x 1
    for w, h in ((8192, 8192), (1, 8192), (8192, 1)):
        im = Image.new("L", (w, h), 0)
        if w > 1 and h > 1:
            im.paste(200, (w // 4, h // 4, 3 * w // 4, 3 * h // 4))
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        write(f"edge_{w}x{h}.png", buf.getvalue())
    return files


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> list[Path]:
    return fuzz_files(tmp_path_factory.mktemp("fuzz"))


def test_fuzz_cases_cover_every_mode_and_size(cases):
    modes = {p.name.split("_")[1].replace("-", ";") for p in cases if p.name.startswith("m")}
    assert modes == set(Image.MODES) - {"La"}  # PIL writes "La" (premultiplied LA) in no format
    sizes = {int(x) for p in cases for m in re.finditer(r"_(\d+)x(\d+)", p.name) for x in m.groups()}
    assert {1, 8192} <= sizes and len(cases) >= 80


def test_reader_converts_or_names_the_file(cases):
    outcomes = {"image": 0, "error": 0}
    for path in cases:
        try:
            img = read_image(path)
        except DataError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc), str(exc)
            outcomes["error"] += 1
            continue
        except Exception as exc:  # noqa: BLE001 - the point of the test
            pytest.fail(f"{path.name}: {type(exc).__name__}: {exc}")
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and img.flags.c_contiguous, path.name
        outcomes["image"] += 1
    assert outcomes["image"] >= 40 and outcomes["error"] >= 20, outcomes


def test_predict_ends_cleanly_on_every_case(cases, untrained_checkpoint, tmp_path, capsys):
    # every third case and every extreme, for time: the reader saw them all above (the 8k x 8k photo alone takes seconds)
    cases = [p for i, p in enumerate(cases) if (i % 3 == 0 or p.name.startswith(("edge_", "bomb"))) and p.name != "edge_8192x8192.png"]
    out = tmp_path / "pred"
    rc = main(["predict", *map(str, cases), "--checkpoint", str(untrained_checkpoint), "--out", str(out), "--force"])
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err and "error:" not in cap.err
    failed = [line for line in cap.err.splitlines() if line.startswith("  failed: ")]
    n_ok = len(list(out.glob("*.json")))
    assert f"predict: {n_ok} ok, {len(failed)} failed" in cap.err
    assert n_ok + len(failed) == len(cases) and rc == (1 if failed else 0)
    assert n_ok >= 10 and len(failed) >= 5
    for path in cases:  # each file is either predicted or named in exactly one failure line
        assert sum(str(path) in line for line in failed) <= 1
