"""Writers of TINY fake datasets in each public layout (docs/METHOD.md, "The datasets and their published layouts").

Images are 64 x 48 px: a bright, slightly textured disc on black (so FOV detection works), written as
JPEG/PNG/TIFF like the real sets; lesion masks are TIFF blocks inside the disc. Each writer returns a dict
describing what it wrote (ids per split, grades, ...) so tests can compare the loader's output against it.
The odd cases of the real sets are built in (see each writer's docstring).

``write_xls`` writes a minimal BIFF8 (.xls) workbook, since no .xls writer is installed (xlwt is gone) and
Messidor-1 ships its labels as .xls read through pandas + xlrd.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Sequence

import numpy as np
import tifffile
from PIL import Image

W, H = 64, 48


def fundus_array(seed: int = 0, h: int = H, w: int = W) -> np.ndarray:
    """A uint8 (h, w, 3) fake fundus: orange-red textured disc on black."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    r = min(h, w) * 0.48
    disc = (yy - h / 2 + 0.5) ** 2 + (xx - w / 2 + 0.5) ** 2 <= r * r
    img = np.zeros((h, w, 3), np.float32)
    base = np.array([190, 90, 40], np.float32) + rng.uniform(-20, 20, 3)
    img[disc] = base + rng.normal(0, 6, (int(disc.sum()), 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def write_image(path: Path, arr: np.ndarray | None = None, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = fundus_array(seed) if arr is None else arr
    im = Image.fromarray(arr)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        im.save(path, quality=95)
    else:
        im.save(path)
    return path


def lesion_block(i: int, h: int = H, w: int = W) -> np.ndarray:
    """A bool mask with a 6x6 block inside the disc, position depending on ``i``."""
    m = np.zeros((h, w), bool)
    top, left = 14 + 4 * (i % 4), 20 + 5 * (i % 5)
    m[top : top + 6, left : left + 6] = True
    return m


def write_mask(path: Path, mask: np.ndarray, style: str = "gray255") -> Path:
    """TIFF mask: ``rgb255`` (IDRiD: red 255), ``gray255`` (0/255) or ``gray01`` (0/1)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if style == "rgb255":
        arr = np.zeros((*mask.shape, 3), np.uint8)
        arr[..., 0] = mask * 255
    elif style == "gray01":
        arr = mask.astype(np.uint8)
    else:
        arr = mask.astype(np.uint8) * 255
    tifffile.imwrite(path, arr)
    return path


# --------------------------------------------------------------------------- minimal .xls (BIFF8) writer
def _rec(rtype: int, data: bytes = b"") -> bytes:
    return struct.pack("<HH", rtype, len(data)) + data


def _biff_str(text: str, lenlen: int) -> bytes:
    raw = text.encode("latin-1")
    return struct.pack("<H" if lenlen == 2 else "<B", len(raw)) + b"\x00" + raw


def _biff_workbook(header: Sequence[str], rows: Sequence[Sequence[object]]) -> bytes:
    bof = lambda kind: _rec(0x0809, struct.pack("<HHHHII", 0x0600, kind, 0x0DBB, 0x07CC, 0, 0x06))  # noqa: E731
    cells = b""
    for r, row in enumerate([list(header), *map(list, rows)]):
        for c, v in enumerate(row):
            if v is None or v == "":
                continue
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                cells += _rec(0x0203, struct.pack("<HHHd", r, c, 0, float(v)))  # NUMBER
            else:
                cells += _rec(0x0204, struct.pack("<HHH", r, c, 0) + _biff_str(str(v), 2))  # LABEL
    ncols = max(len(header), *(len(r) for r in rows)) if rows else len(header)
    sheet = bof(0x0010) + _rec(0x0200, struct.pack("<IIHHH", 0, len(rows) + 1, 0, ncols, 0)) + cells + _rec(0x000A)
    name = b"Feuil1"
    boundsheet_len = 4 + 6 + 2 + len(name)  # record header + offset/flags + string header + name
    globals_ = bof(0x0005) + _rec(0x0042, struct.pack("<H", 1252))
    offset = len(globals_) + boundsheet_len + 4  # + EOF record
    globals_ += _rec(0x0085, struct.pack("<IBB", offset, 0, 0) + struct.pack("<BB", len(name), 0) + name) + _rec(0x000A)
    return globals_ + sheet


def write_xls(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> Path:
    """Write a one-sheet .xls (OLE2 compound file holding a BIFF8 'Workbook' stream) readable by xlrd."""
    stream = _biff_workbook(header, rows)
    stream += b"\x00" * (max(4096, -(-len(stream) // 512) * 512) - len(stream))  # >= 4096: no mini stream
    n_sec = len(stream) // 512
    assert n_sec + 2 <= 128, "fixture workbook too large for one FAT sector"
    ENDCHAIN, FATSECT, FREE = -2, -3, -1
    fat = [FATSECT, ENDCHAIN] + [3 + i for i in range(n_sec - 1)] + [ENDCHAIN]
    fat += [FREE] * (128 - len(fat))
    header_ = (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 16
        + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6) + b"\x00" * 6
        + struct.pack("<iiiiiiiii", 0, 1, 1, 0, 4096, ENDCHAIN, 0, ENDCHAIN, 0)
        + struct.pack("<109i", 0, *([FREE] * 108))
    )
    assert len(header_) == 512

    def dirent(name: str, etype: int, child: int, start: int, size: int) -> bytes:
        raw = (name + "\x00").encode("utf-16-le") if name else b""
        return (
            raw.ljust(64, b"\x00") + struct.pack("<HBB", len(raw), etype, 1)
            + struct.pack("<iii", -1, -1, child) + b"\x00" * 16 + b"\x00" * 4 + b"\x00" * 16
            + struct.pack("<iII", start, size, 0)
        )

    dir_sector = dirent("Root Entry", 5, 1, ENDCHAIN, 0) + dirent("Workbook", 2, -1, 2, len(stream))
    dir_sector += dirent("", 0, -1, 0, 0) * 2
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header_ + struct.pack("<128i", *fat) + dir_sector + stream)
    return path


# --------------------------------------------------------------------------- layouts
def write_idrid_seg(root: Path) -> dict:
    """IDRiD segmentation part: 3 train + 2 test images; masks RGB TIFF (red 255).

    Odd cases: IDRiD_02 has no SE mask file (lesion absent), IDRiD_04 (test) has no HE file; the
    ``5. Optic Disc`` folder exists and must be ignored.
    """
    base = root / "A. Segmentation"
    dirs = {"MA": "1. Microaneurysms", "HE": "2. Haemorrhages", "EX": "3. Hard Exudates", "SE": "4. Soft Exudates", "OD": "5. Optic Disc"}
    splits = {"train": ("a. Training Set", ["IDRiD_01", "IDRiD_02", "IDRiD_03"]), "test": ("b. Testing Set", ["IDRiD_04", "IDRiD_05"])}
    missing = {("IDRiD_02", "SE"), ("IDRiD_04", "HE")}
    for split, (sdir, ids) in splits.items():
        for k, i in enumerate(ids):
            write_image(base / "1. Original Images" / sdir / f"{i}.jpg", seed=k)
            for j, (code, d) in enumerate(dirs.items()):
                if (i, code) in missing:
                    continue
                write_mask(base / "2. All Segmentation Groundtruths" / sdir / d / f"{i}_{code}.tif", lesion_block(j + k), "rgb255")
    return {"splits": {s: ids for s, (_, ids) in splits.items()}, "missing": missing}


IDRID_TRAIN = {"IDRiD_001": 0, "IDRiD_002": 1, "IDRiD_003": 2, "IDRiD_004": 3, "IDRiD_005": 4, "IDRiD_006": 2}
IDRID_TEST = {"IDRiD_101": 0, "IDRiD_102": 4, "IDRiD_103": 2}


def write_idrid(root: Path, train: dict | None = None, test: dict | None = None, columns: Sequence[str] | None = None) -> dict:
    """IDRiD grading part. Odd cases: names without extension, extra empty columns, ``"Risk of macular edema "``."""
    train = IDRID_TRAIN if train is None else train
    test = IDRID_TEST if test is None else test
    base = root / "B. Disease Grading"
    cols = list(columns or ["Image name", "Retinopathy grade", "Risk of macular edema "])
    for sdir, labels_name, table in (
        ("a. Training Set", "a. IDRiD_Disease Grading_Training Labels.csv", train),
        ("b. Testing Set", "b. IDRiD_Disease Grading_Testing Labels.csv", test),
    ):
        lines = [",".join(cols + ["", ""])]
        for k, (name, g) in enumerate(table.items()):
            write_image(base / "1. Original Images" / sdir / f"{name}.jpg", seed=k)
            lines.append(f"{name},{g},{g % 3},,")
        (base / "2. Groundtruths").mkdir(parents=True, exist_ok=True)
        (base / "2. Groundtruths" / labels_name).write_text("\n".join(lines) + "\n")
    return {"splits": {"train": dict(train), "test": dict(test)}}


DDR_GRADES = {
    "train": {"007-0001-000": 0, "007-0002-000": 1, "007-0003-000": 2, "007-0004-000": 3, "007-0005-000": 4, "007-0006-000": 5},
    "valid": {"007-0101-000": 0, "007-0102-000": 2, "007-0103-000": 5},
    "test": {"007-0201-000": 1, "007-0202-000": 4},
}


def write_ddr(root: Path, grades: dict | None = None) -> dict:
    """DDR grading part: ``DR_grading/{train,valid,test}/*.jpg`` + ``{split}.txt``; grade 5 (ungradable) occurs twice."""
    grades = DDR_GRADES if grades is None else grades
    base = root / "DR_grading"
    for sdir, table in grades.items():
        lines = []
        for k, (stem, g) in enumerate(table.items()):
            write_image(base / sdir / f"{stem}.jpg", seed=k)
            lines.append(f"{stem}.jpg {g}")
        (base / f"{sdir}.txt").write_text("\n".join(lines) + "\n\n")
    return {"grades": grades, "n_ungradable": sum(g == 5 for t in grades.values() for g in t.values())}


def write_ddr_seg(root: Path) -> dict:
    """DDR lesion segmentation: 2 train, 2 valid (mask folder ``segmentation label``), 1 test.

    Masks are 0/255 TIFF in train/test and 0/1 TIFF in valid; 007-3002 has no SE file.
    """
    base = root / "lesion_segmentation"
    ids = {"train": ["007-3000", "007-3001"], "valid": ["007-3002", "007-3003"], "test": ["007-3004"]}
    for sdir, stems in ids.items():
        label = "segmentation label" if sdir == "valid" else "label"
        for k, stem in enumerate(stems):
            write_image(base / sdir / "image" / f"{stem}.jpg", seed=k)
            for j, lesion in enumerate(("MA", "HE", "EX", "SE")):
                if stem == "007-3002" and lesion == "SE":
                    continue
                write_mask(base / sdir / label / lesion / f"{stem}.tif", lesion_block(j + k), "gray01" if sdir == "valid" else "gray255")
    return {"ids": ids}


MESSIDOR1 = {
    "Base11": {"20051019_38557_0100_PP.tif": 0, "20051019_38558_0100_PP.tif": 1, "20051019_38559_0100_PP.tif": 2, "20051019_38560_0100_PP.tif": 3},
    "Base12": {"20051020_43808_0100_PP.tif": 0, "20051020_43809_0100_PP.tif": 1, "20051020_43810_0100_PP.tif": 2, "20051020_43811_0100_PP.tif": 3},
}


def write_messidor1(root: Path, bases: dict | None = None) -> dict:
    """Messidor-1: ``Annotation_BaseNN.xls`` beside ``BaseNN/*.tif``; header ``"Retinopathy grade "`` (trailing space)."""
    bases = MESSIDOR1 if bases is None else bases
    for base, table in bases.items():
        rows = []
        for k, (name, g) in enumerate(table.items()):
            write_image(root / base / name, seed=k)
            rows.append([name, "Service Ophtalmologie Lariboisière"[:20], g, 0])
        write_xls(root / f"Annotation_{base}.xls", ["Image name", "Ophthalmologic department", "Retinopathy grade ", "Risk of macular edema "], rows)
    return {"grades": {Path(n).stem: g for t in bases.values() for n, g in t.items()}}


MESSIDOR2 = {"20051020_44431_0100_PP.png": (0, 1), "20051020_44432_0100_PP.png": (1, 1), "20051020_44433_0100_PP.png": (2, 1),
             "20051020_44434_0100_PP.png": (3, 1), "20051020_44435_0100_PP.png": (4, 1), "20051020_44436_0100_PP.png": (None, 0),
             "IM000001.JPG": (2, 1), "IM000002.JPG": (0, 1)}


def write_messidor2(root: Path) -> dict:
    """Messidor-2, Kaggle's preprocessed copy: ``messidor_data.csv`` (id_code, diagnosis, ...) + ``IMAGES/``;
    one ungradable image (empty diagnosis, gradable 0)."""
    lines = ["id_code,diagnosis,adjudicated_dme,adjudicated_gradable"]
    for k, (name, (g, gradable)) in enumerate(MESSIDOR2.items()):
        write_image(root / "IMAGES" / name, seed=k)
        lines.append(f"{name},{'' if g is None else g},0,{gradable}")
    (root / "messidor_data.csv").write_text("\n".join(lines) + "\n")
    return {"grades": {Path(n).stem: g for n, (g, ok) in MESSIDOR2.items() if ok}, "n_ungradable": 1}


MESSIDOR2_ADJUDICATED = {**MESSIDOR2, "20051020_44437_0100_PP.png": (None, 0), "IM000003.JPG": (4, 1)}


def write_messidor2_adjudicated(root: Path) -> dict:
    """Messidor-2 with the adjudicated grades file (Krause et al. 2018): ``messidor_data.csv`` with header
    ``image_id, adjudicated_dr_grade, adjudicated_dme, adjudicated_gradable`` + ``IMAGES/``.

    Odd cases of the real file: two ungradable rows (empty grade, gradable 0) and ids in lower case
    (``IM000001.jpg``) for files named ``IM000001.JPG``.
    """
    lines = ["image_id,adjudicated_dr_grade,adjudicated_dme,adjudicated_gradable"]
    for k, (name, (g, gradable)) in enumerate(MESSIDOR2_ADJUDICATED.items()):
        write_image(root / "IMAGES" / name, seed=k)
        row_id = name[:-4] + name[-4:].lower()
        lines.append(f"{row_id},{'' if g is None else g},{'' if g is None else g % 2},{gradable}")
    (root / "messidor_data.csv").write_text("\n".join(lines) + "\n")
    grades = {Path(n).stem: g for n, (g, ok) in MESSIDOR2_ADJUDICATED.items() if ok}
    return {"grades": grades, "n_ungradable": sum(not ok for _, ok in MESSIDOR2_ADJUDICATED.values())}


APTOS = {f"{i:012x}": i % 5 for i in range(0x1a2b3c, 0x1a2b3c + 10)}


def write_id_grade_csv(root: Path, labels: str, header: str, images: str, ext: str, grades: dict) -> dict:
    """The Kaggle-style layout of APTOS and EyePACS: one ``<id><ext>`` image per grade under ``root / images``
    and a labels CSV ``root / labels`` with the two columns ``header`` (``<id>,<grade>`` rows)."""
    lines = [header]
    for k, (i, g) in enumerate(grades.items()):
        write_image(root / images / f"{i}{ext}", seed=k)
        lines.append(f"{i},{g}")
    (root / labels).write_text("\n".join(lines) + "\n")
    return {"grades": dict(grades)}


def write_aptos(root: Path, grades: dict | None = None) -> dict:
    """APTOS 2019: ``train.csv`` (id_code, diagnosis) + ``train_images/<id_code>.png``."""
    return write_id_grade_csv(root, "train.csv", "id_code,diagnosis", "train_images", ".png", APTOS if grades is None else grades)


EYEPACS = {f"{10 + i // 2}_{'left' if i % 2 == 0 else 'right'}": i % 5 for i in range(10)}


def write_eyepacs(root: Path) -> dict:
    """EyePACS (Kaggle 2015): ``trainLabels.csv`` (image, level) + ``train/<image>.jpeg``."""
    return write_id_grade_csv(root, "trainLabels.csv", "image,level", "train", ".jpeg", EYEPACS)


WRITERS = {
    "idrid-seg": write_idrid_seg,
    "idrid": write_idrid,
    "ddr": write_ddr,
    "ddr-seg": write_ddr_seg,
    "messidor1": write_messidor1,
    "messidor2": write_messidor2,
    "aptos": write_aptos,
    "eyepacs": write_eyepacs,
}
