"""The published layout of each dataset format: its folders and labels files, one indexer per format
(:data:`INDEXERS`), and :func:`index_dataset`, which lists the records of a root without decoding images."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Callable

from deepmt import LESIONS
from deepmt.data.real.labels import read_labels_table, records_from_table, records_with_masks, require_dir, require_file
from deepmt.data.real.records import FundusRecord, IndexReport
from deepmt.errors import DataError

log = logging.getLogger(__name__)

#: The top folder of each part of a full IDRiD / DDR release; one root holds both parts of a release.
PART_DIRS = {"idrid": "B. Disease Grading", "idrid-seg": "A. Segmentation", "ddr": "DR_grading", "ddr-seg": "lesion_segmentation"}
#: The other part of the same release (grading <-> lesion segmentation).
COMPANION = {"idrid": "idrid-seg", "idrid-seg": "idrid", "ddr": "ddr-seg", "ddr-seg": "ddr"}
IDRID_LESION_DIRS = {"MA": "1. Microaneurysms", "HE": "2. Haemorrhages", "EX": "3. Hard Exudates", "SE": "4. Soft Exudates"}
IDRID_SPLIT_DIRS = {"train": "a. Training Set", "test": "b. Testing Set"}
DDR_SPLIT_DIRS = {"train": "train", "val": "valid", "test": "test"}
#: What each format expects under its root (for error messages).
LAYOUTS: dict[str, str] = {
    "idrid-seg": "'A. Segmentation/1. Original Images/{a. Training Set,b. Testing Set}/IDRiD_NN.jpg' and "
    "'A. Segmentation/2. All Segmentation Groundtruths/{a. Training Set,b. Testing Set}/{1. Microaneurysms,...}/IDRiD_NN_MA.tif'",
    "idrid": "'B. Disease Grading/1. Original Images/{a. Training Set,b. Testing Set}/IDRiD_NNN.jpg' and "
    "'B. Disease Grading/2. Groundtruths/{a. IDRiD_Disease Grading_Training Labels.csv,b. IDRiD_Disease Grading_Testing Labels.csv}'",
    "ddr": "'DR_grading/{train,valid,test}/*.jpg' and 'DR_grading/{train,valid,test}.txt' (lines '<file> <grade>')",
    "ddr-seg": "'lesion_segmentation/{train,valid,test}/image/*.jpg' and '.../label/{EX,HE,MA,SE}/<stem>.tif' "
    "('segmentation label' in valid)",
    "messidor1": "'Annotation_Base{11..34}.xls' beside 'Base11..Base34/*.tif'",
    "messidor2": "'messidor_data.csv' (the adjudicated grades: image_id, adjudicated_dr_grade, adjudicated_dme, "
    "adjudicated_gradable; or Kaggle's id_code, diagnosis) and 'IMAGES/'",
    "aptos": "'train.csv' (id_code, diagnosis) and 'train_images/<id_code>.png'",
    "eyepacs": "'trainLabels.csv' (image, level) and 'train/<image>.jpeg'",
}


def _index_idrid_seg(root: Path, rep: IndexReport) -> None:
    base = require_dir(root / PART_DIRS["idrid-seg"], "IDRiD segmentation part")
    for split, sdir in IDRID_SPLIT_DIRS.items():
        with rep.guard():
            img_dir = require_dir(base / "1. Original Images" / sdir, f"IDRiD {split} images")
            gt_dir = require_dir(base / "2. All Segmentation Groundtruths" / sdir, f"IDRiD {split} masks")
            rep.splits[split] = records_with_masks(rep, img_dir, gt_dir, IDRID_LESION_DIRS, "{stem}_{lesion}", split)


def _index_idrid(root: Path, rep: IndexReport) -> None:
    base = require_dir(root / PART_DIRS["idrid"], "IDRiD grading part")
    label_files = {
        "train": "a. IDRiD_Disease Grading_Training Labels.csv",
        "test": "b. IDRiD_Disease Grading_Testing Labels.csv",
    }
    for split, sdir in IDRID_SPLIT_DIRS.items():
        with rep.guard():
            img_dir = require_dir(base / "1. Original Images" / sdir, f"IDRiD {split} images")
            labels = base / "2. Groundtruths" / label_files[split]
            df = read_labels_table(labels, ["Image name", "Retinopathy grade"])
            rep.splits[split] = records_from_table(
                rep, df, labels, "Image name", "Retinopathy grade", img_dir, split, range(5), (".jpg", ".jpeg", ".png", ".tif")
            )


def _read_ddr_txt(path: Path, rep: IndexReport):
    import pandas as pd

    require_file(path, "DDR labels file")
    rows = []
    for i, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        text = raw.strip()
        if not text:
            continue
        parts = text.rsplit(maxsplit=1)
        if len(parts) != 2:
            rep.error(f"{path} line {i}: expected '<file> <grade>', got {text!r}")
            continue
        rows.append({"file": parts[0], "grade": parts[1], "line": i})
    return pd.DataFrame(rows, columns=["file", "grade", "line"])


def _index_ddr(root: Path, rep: IndexReport) -> None:
    base = require_dir(root / PART_DIRS["ddr"], "DDR grading part")
    for split, sdir in DDR_SPLIT_DIRS.items():
        with rep.guard():
            img_dir = require_dir(base / sdir, f"DDR {split} images")
            labels = base / f"{sdir}.txt"
            df = _read_ddr_txt(labels, rep)
            rep.splits[split] = records_from_table(
                rep, df, labels, "file", "grade", img_dir, split, range(5), (".jpg", ".jpeg", ".png"), ungradable=(5,)
            )


def _index_ddr_seg(root: Path, rep: IndexReport) -> None:
    base = require_dir(root / PART_DIRS["ddr-seg"], "DDR lesion segmentation part")
    dirs = {lesion: lesion for lesion in LESIONS}
    for split, sdir in DDR_SPLIT_DIRS.items():
        with rep.guard():
            sbase = require_dir(base / sdir, f"DDR {split} segmentation set")
            img_dir = require_dir(sbase / "image", f"DDR {split} images")
            label_dir = next((sbase / n for n in ("label", "segmentation label") if (sbase / n).is_dir()), None)
            if label_dir is None:
                raise DataError(f"{sbase / 'label'}: folder not found (DDR {split} masks; also tried 'segmentation label')")
            rep.splits[split] = records_with_masks(rep, img_dir, label_dir, dirs, "{stem}", split)


def _index_messidor1(root: Path, rep: IndexReport) -> None:
    sheets = sorted(root.glob("Annotation_Base*.xls")) + sorted(root.glob("Base*/Annotation_Base*.xls"))
    if not sheets:
        raise DataError(f"{root}: no 'Annotation_Base*.xls' files (expected {LAYOUTS['messidor1']})")
    recs: list[FundusRecord] = []
    ids: set[str] = set()
    for sheet in sheets:
        with rep.guard():
            m = re.match(r"Annotation_(Base\d+)", sheet.stem, flags=re.IGNORECASE)
            folder = root / m.group(1) if m else sheet.parent
            if not folder.is_dir() and sheet.parent != root:
                folder = sheet.parent
            require_dir(folder, f"images of {sheet.name}")
            df = read_labels_table(sheet, ["Image name", "Retinopathy grade"])
            for r in records_from_table(rep, df, sheet, "Image name", "Retinopathy grade", folder, "train", range(4), (".tif", ".tiff")):
                if r.id in ids:
                    rep.warn(f"{r.source}: {r.id} is listed in another annotation file too; keeping the first")
                    continue
                ids.add(r.id)
                recs.append(r)
    rep.splits["train"] = recs


#: Messidor-2's two label headers: the adjudicated grades (Krause et al. 2018) and the Kaggle preprocessed copy.
MESSIDOR2_HEADERS = (("image_id", "adjudicated_dr_grade"), ("id_code", "diagnosis"))


def _index_messidor2(root: Path, rep: IndexReport) -> None:
    labels = root / "messidor_data.csv"
    img_dir = require_dir(root / "IMAGES", "Messidor-2 images")
    df = read_labels_table(labels, *MESSIDOR2_HEADERS)
    id_col, grade_col = next(h for h in MESSIDOR2_HEADERS if all(c in df.columns for c in h))
    rep.splits["train"] = records_from_table(
        rep, df, labels, id_col, grade_col, img_dir, "train", range(5), (".png", ".jpg", ".tif", ".JPG"),
        gradable_col="adjudicated_gradable" if "adjudicated_gradable" in df.columns else None,
    )


def _index_aptos(root: Path, rep: IndexReport) -> None:
    labels = root / "train.csv"
    img_dir = require_dir(root / "train_images", "APTOS training images")
    df = read_labels_table(labels, ["id_code", "diagnosis"])
    rep.splits["train"] = records_from_table(rep, df, labels, "id_code", "diagnosis", img_dir, "train", range(5), (".png", ".jpg"))


def _index_eyepacs(root: Path, rep: IndexReport) -> None:
    labels = root / "trainLabels.csv"
    img_dir = require_dir(root / "train", "EyePACS training images")
    df = read_labels_table(labels, ["image", "level"])
    rep.splits["train"] = records_from_table(rep, df, labels, "image", "level", img_dir, "train", range(5), (".jpeg", ".jpg", ".png"))


INDEXERS: dict[str, Callable[[Path, IndexReport], None]] = {
    "idrid-seg": _index_idrid_seg,
    "idrid": _index_idrid,
    "ddr": _index_ddr,
    "ddr-seg": _index_ddr_seg,
    "messidor1": _index_messidor1,
    "messidor2": _index_messidor2,
    "aptos": _index_aptos,
    "eyepacs": _index_eyepacs,
}


FORMATS = tuple(INDEXERS)


def check_format_and_root(fmt: str, root: str | Path | None) -> Path:
    """Validate the format name and that ``root`` is an existing, non-empty folder; DataError otherwise."""
    if fmt not in INDEXERS:
        raise DataError(f"unknown dataset format {fmt!r}; known formats: {', '.join(FORMATS)} (or 'synthetic')")
    if root is None or str(root).strip() == "":
        raise DataError(f"data.root is not set; dataset {fmt!r} needs a root folder holding {LAYOUTS[fmt]}")
    path = Path(root).expanduser()
    if not path.exists():
        raise DataError(f"{path}: dataset root does not exist (format {fmt!r} expects {LAYOUTS[fmt]})")
    if not path.is_dir():
        raise DataError(f"{path}: dataset root is not a folder (format {fmt!r} expects {LAYOUTS[fmt]})")
    if not any(path.iterdir()):
        raise DataError(f"{path}: dataset root is empty (format {fmt!r} expects {LAYOUTS[fmt]})")
    return path


def index_dataset(fmt: str, root: str | Path | None) -> IndexReport:
    """Index ``root`` in layout ``fmt`` without decoding images; every problem is collected in the report."""
    path = check_format_and_root(fmt, root)
    rep = IndexReport(fmt=fmt, root=path)
    with rep.guard():
        INDEXERS[fmt](path, rep)
    for split in rep.splits:
        rep.splits[split].sort(key=lambda r: r.id)
    if rep.n_ungradable:
        log.info("%s (%s): excluded %d ungradable image(s)", path, fmt, rep.n_ungradable)
    return rep
