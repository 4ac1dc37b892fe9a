"""Image and mask reading for the real fundus datasets, with clear errors for bad files.

Every public fundus set stores its photographs as JPEG/PNG/TIFF (IDRiD JPEG 4288 x 2848, DDR JPEG,
Messidor TIFF, APTOS PNG, EyePACS JPEG) and its lesion masks as TIFF (IDRiD: RGB, lesion in red;
DDR: single channel 0/255 or 0/1). :func:`read_image` and :func:`read_mask` turn any of them into
one representation:

* ``read_image(path) -> np.uint8 (H, W, 3)`` RGB. Grayscale is replicated to 3 channels, RGBA / LA are
  composited on black (a fundus background is black), palette and CMYK images are converted by PIL,
  16/32-bit integer images are scaled by their *actual* bit depth (``bits = max(8, max.bit_length())``,
  so 12-bit camera data stored in 16-bit words is not crushed to near-black), float images in [0, 1]
  are scaled by 255.
* ``read_mask(path) -> np.bool_ (H, W)``. The channels are reduced by their maximum (so IDRiD's red-only
  RGB masks work), then a pixel is "lesion" when its value is above *half of the mask's own bit depth*:
  ``value > (2**bits - 1) / 2`` with ``bits = max.bit_length()``. This one rule reads 0/1 masks
  (threshold 0.5), 0/255 masks and anti-aliased 8-bit masks (threshold 127.5) and 16-bit masks alike,
  without turning JPEG-like noise near 0 into lesion.

Bad input raises :class:`deepmt.errors.DataError` naming the file and the problem: missing file, folder
instead of a file, no read permission, empty file, unknown format, corrupt or truncated data (the full
image is decoded with ``Image.load()``; TIFFs PIL cannot decode are retried with ``tifffile``), a header
claiming an image too large to decode (a decompression bomb). ``tests/test_fuzz.py`` holds the reader to
this on random bytes, every PIL mode, sizes from 1 px to 8k px and odd extensions.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from deepmt.errors import DataError
from deepmt.utils import host_available_bytes

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
_TIFF_EXTENSIONS = (".tif", ".tiff")

# PIL refuses images above ~179 MP by default as a "decompression bomb"; fundus photos are far smaller,
# but leave the guard on at a generous limit rather than disabling it.
Image.MAX_IMAGE_PIXELS = 400_000_000


def _check_file(path: Path) -> None:
    """Raise DataError unless ``path`` is an existing, readable, non-empty regular file."""
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: is not a file")
    if not os.access(path, os.R_OK):
        raise DataError(f"{path}: no read permission")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes)")


#: share of the memory available (``MemAvailable``) that one image may take once decoded and turned into the
#: float32 tensors the models read; larger images are refused from their header, before any decoding
IMAGE_MEMORY_SHARE = 0.25
#: bytes per pixel of a decoded image's working copies: the decoded array (up to 4 bands x 2 bytes), its RGB uint8
#: copy and the float32 RGB tensor made from it (12 bytes)
_BYTES_PER_PIXEL = 8 + 3 + 12


def check_image_memory(path: Path, width: int, height: int) -> None:
    """A :class:`DataError` naming ``path`` when decoding a ``width`` x ``height`` image (and the tensors made from
    it) would take more than :data:`IMAGE_MEMORY_SHARE` of the memory available: checked from the header alone, so a
    small file that decodes to a huge image (a 2 MB PNG of 25,000^2 px decodes to 1.9 GB) is refused in
    milliseconds instead of filling the memory. Unknown available memory: not refused."""
    need = int(width) * int(height) * _BYTES_PER_PIXEL
    available = host_available_bytes()
    if available is None:
        return
    limit = int(available * IMAGE_MEMORY_SHARE)
    if need > limit:
        raise DataError(
            f"{path}: image of {width} x {height} px ({width * height / 1e6:,.0f} Mpx) would need about "
            f"{need / 2**30:.1f} GiB once decoded, more than {IMAGE_MEMORY_SHARE:.0%} of the {available / 2**30:.1f} GiB "
            f"available ({limit / 2**30:.1f} GiB); resize it first (fundus photographs are a few Mpx)"
        )


def _decode(path: Path) -> tuple[np.ndarray, str]:
    """Fully decode ``path`` into ``(array, mode)``; ``mode`` is PIL's mode or ``"tifffile"``.

    Palette, CMYK, YCbCr, LAB and HSV images are converted to RGB(A) by PIL here, since their raw
    numbers are not intensities.
    """
    _check_file(path)
    pil_error: Exception | None = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Corrupt EXIF data", "Possibly corrupt TIFF"
            with Image.open(path) as im:
                check_image_memory(path, *im.size)  # from the header, before decoding
                im.load()  # force the full decode: truncated/corrupt data fails here, not later
                mode = im.mode
                if im.format == "TIFF" and mode in ("RGB", "RGBA", "RGBX", "LA", "CMYK") and _tiff_bits(im) > 8:
                    # PIL keeps only the high byte of >8-bit colour TIFFs: read the full values with tifffile
                    return _read_tifffile(path), "tifffile"
                if mode == "P" or mode == "PA":
                    im = im.convert("RGBA" if ("transparency" in im.info or mode == "PA") else "RGB")
                elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                    im = im.convert("RGB")
                elif mode == "1":
                    im = im.convert("L")
                    return (np.asarray(im) > 0), "1"
                return np.asarray(im).copy(), im.mode
    except DataError:
        raise
    except PermissionError as exc:
        raise DataError(f"{path}: no read permission ({exc.strerror})") from exc
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path}: image too large to read ({exc}); a corrupt header or not a photograph") from exc
    except MemoryError as exc:
        raise DataError(f"{path}: not enough memory to decode this image") from exc
    except Exception as exc:  # PIL raises many types for bad data (OSError, SyntaxError, struct.error, ...)
        pil_error = exc
    if path.suffix.lower() in _TIFF_EXTENSIONS:
        try:
            return _read_tifffile(path), "tifffile"
        except Exception as exc:  # tifffile raises many types for bad data
            raise DataError(f"{path}: corrupt or truncated TIFF (PIL: {pil_error}; tifffile: {exc})") from exc
    kind = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}.get(path.suffix.lower(), "image")
    if isinstance(pil_error, UnidentifiedImageError):
        raise DataError(f"{path}: not a readable image (unknown or corrupt {kind} data)") from pil_error
    raise DataError(f"{path}: corrupt or truncated {kind} (cannot decode: {pil_error})") from pil_error


def _tiff_bits(im: Image.Image) -> int:
    bps = getattr(im, "tag_v2", {}).get(258, 8)
    return int(max(bps)) if isinstance(bps, (tuple, list)) else int(bps)


def _read_tifffile(path: Path) -> np.ndarray:
    import tifffile

    return np.asarray(tifffile.imread(path))


def _int_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale integer data by its actual bit depth (at least 8 bits) to uint8."""
    if arr.dtype == np.uint8:
        return arr
    arr = arr.astype(np.int64)
    arr = np.clip(arr, 0, None)
    vmax = int(arr.max()) if arr.size else 0
    bits = max(8, vmax.bit_length())
    return np.round(arr * (255.0 / (2**bits - 1))).astype(np.uint8)


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        with np.errstate(invalid="ignore"):  # signalling NaNs (random data) warn when cast
            arr = np.nan_to_num(arr.astype(np.float64))
        if arr.size and arr.max() <= 1.0:
            arr = arr * 255.0
        return np.clip(np.round(arr), 0, 255).astype(np.uint8)
    return _int_to_uint8(arr)


def _channels_last(arr: np.ndarray) -> np.ndarray:
    """tifffile may return planar (C, H, W) data; PIL never does."""
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 2, 3, 4):
        arr = np.moveaxis(arr, 0, -1)
    return arr


def to_rgb_uint8(arr: np.ndarray, name: str = "image") -> np.ndarray:
    """Convert a decoded array (H,W), (H,W,1|2|3|4) of any dtype to RGB uint8 (H, W, 3).

    2 channels are luminance + alpha, 4 channels are RGB + alpha: alpha is composited on black.
    """
    arr = _channels_last(np.asarray(arr))
    while arr.ndim > 3 and arr.shape[0] == 1:  # e.g. a (1, H, W, 3) single-page TIFF
        arr = arr[0]
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4) or min(arr.shape[:2]) == 0:
        raise DataError(f"{name}: unsupported image shape {tuple(arr.shape)} (expected H x W x 1-4 channels)")
    c = arr.shape[2]
    alpha = None
    if c in (2, 4):
        alpha = _to_uint8(arr[:, :, -1]).astype(np.float32) / 255.0
        arr = arr[:, :, :-1]
    rgb = _to_uint8(arr)
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    if alpha is not None:
        rgb = np.round(rgb.astype(np.float32) * alpha[:, :, None]).astype(np.uint8)
    return np.ascontiguousarray(rgb)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB ``np.uint8 (H, W, 3)``; :class:`DataError` naming the file if it cannot."""
    path = Path(path)
    arr, _mode = _decode(path)
    return to_rgb_uint8(arr, name=str(path))


def mask_from_array(arr: np.ndarray, name: str = "mask") -> np.ndarray:
    """Binarise a decoded mask array of any dtype/channels (see the module docstring for the rule)."""
    arr = _channels_last(np.asarray(arr))
    while arr.ndim > 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3:
        if arr.shape[2] in (2, 4):  # drop alpha
            arr = arr[:, :, :-1]
        arr = arr.max(axis=2)
    if arr.ndim != 2 or min(arr.shape) == 0:
        raise DataError(f"{name}: unsupported mask shape {tuple(arr.shape)} (expected H x W)")
    if arr.dtype == np.bool_:
        return arr.copy()
    if np.issubdtype(arr.dtype, np.floating):
        arr = np.nan_to_num(arr)
        vmax = float(arr.max())
        return arr > (0.5 if vmax <= 1.0 else 127.5)
    arr = arr.astype(np.int64)
    vmax = int(arr.max())
    if vmax <= 0:
        return np.zeros(arr.shape, dtype=bool)
    return arr > (2 ** vmax.bit_length() - 1) / 2.0


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a lesion mask file as ``np.bool_ (H, W)``; :class:`DataError` naming the file if it cannot."""
    path = Path(path)
    arr, _mode = _decode(path)
    return mask_from_array(arr, name=str(path))


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` from the file header only (no full decode); DataError if unreadable."""
    path = Path(path)
    _check_file(path)
    try:
        with Image.open(path) as im:
            w, h = im.size
            return h, w
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        if path.suffix.lower() in _TIFF_EXTENSIONS:
            try:
                import tifffile

                with tifffile.TiffFile(path) as tf:
                    shape = tf.pages[0].shape
                    return int(shape[0]), int(shape[1])
            except Exception:
                pass
        raise DataError(f"{path}: not a readable image ({exc})") from exc


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")
