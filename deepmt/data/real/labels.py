"""The files of a published layout: required folders and files, the image files of a folder, labels tables
(CSV / XLS) read, checked and matched row by row to the images on disk, and the lesion mask files of an image
(and of every image of a segmentation set).
Every problem names its file and goes to the :class:`~deepmt.data.real.records.IndexReport`."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from deepmt import LESIONS
from deepmt.data.io import is_image_file
from deepmt.data.real.records import FundusRecord, IndexReport
from deepmt.errors import DataError


def require_dir(path: Path, what: str) -> Path:
    """``path`` if it is a folder; DataError naming it and ``what`` it should hold otherwise."""
    if not path.is_dir():
        raise DataError(f"{path}: folder not found ({what})")
    return path


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a file; DataError naming it and ``what`` it should be otherwise."""
    if not path.is_file():
        raise DataError(f"{path}: file not found ({what})")
    return path


def image_files(folder: Path) -> dict[str, Path]:
    """Image files in ``folder`` by lower-case name."""
    return {p.name.lower(): p for p in sorted(folder.iterdir()) if is_image_file(p)}


def _lookup(listing: dict[str, Path], name: str, exts: Sequence[str]) -> Path | None:
    key = name.strip().lower()
    if key in listing:
        return listing[key]
    for ext in exts:
        if key + ext in listing:
            return listing[key + ext]
    return None


def read_labels_table(path: Path, columns: Sequence[str], *alternatives: Sequence[str]) -> "pd.DataFrame":  # noqa: F821
    """Read a CSV/XLS labels file; strip header whitespace, drop empty columns/rows, check ``columns``.

    Column names are matched case-insensitively after stripping (Messidor's ``"Retinopathy grade "``),
    and renamed to the spelling in ``columns``. Where a dataset ships more than one header, the first of
    ``columns, *alternatives`` whose names are all present is used. The ``line`` column holds the file's line
    number of each row (header = line 1; for spreadsheets, the sheet row).
    """
    import pandas as pd

    require_file(path, "labels file")
    try:
        if path.suffix.lower() in (".xls", ".xlsx"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pandas >= 3 calls its xlrd engine deprecated; it still reads .xls
                df = pd.read_excel(path, engine="xlrd" if path.suffix.lower() == ".xls" else None)
        else:
            df = pd.read_csv(path, skip_blank_lines=False)
    except Exception as exc:  # pandas/xlrd raise many types for a bad file
        raise DataError(f"{path}: cannot read the labels file ({type(exc).__name__}: {exc})") from exc
    df.columns = [str(c).strip() for c in df.columns]
    df["line"] = np.arange(len(df)) + 2
    df = df.dropna(axis=1, how="all")
    data_cols = [c for c in df.columns if c != "line"]
    df = df.dropna(axis=0, how="all", subset=data_cols) if data_cols else df
    lower = {c.lower(): c for c in df.columns}
    headers = [list(columns), *map(list, alternatives)]
    for header in headers:
        if all(c.lower() in lower for c in header):
            return df.rename(columns={lower[c.lower()]: c for c in header})
    missing = [c for c in columns if c.lower() not in lower]
    found = [c for c in df.columns if c != "line" and not c.startswith("Unnamed")]
    expected = " or ".join(map(str, headers))
    raise DataError(f"{path}: missing column(s) {missing}; expected columns {expected}, found {found}")


def _parse_grade(value: object, valid: range, ungradable: Sequence[int] = ()) -> int | None:
    """The integer grade, None for an ungradable one; ValueError if not a grade of ``valid``."""
    import pandas as pd

    if value is None or (isinstance(value, float) and np.isnan(value)) or (isinstance(value, str) and not value.strip()):
        raise ValueError("grade is empty")
    num = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
    if pd.isna(num) or float(num) != int(num):
        raise ValueError(f"grade {value!r} is not an integer")
    g = int(num)
    if g in ungradable:
        return None
    if g not in valid:
        raise ValueError(f"grade {g} is outside {valid.start}-{valid.stop - 1}")
    return g


def records_from_table(
    rep: IndexReport,
    df,
    labels: Path,
    id_col: str,
    grade_col: str,
    folder: Path,
    split: str,
    valid: range,
    exts: Sequence[str],
    ungradable: Sequence[int] = (),
    gradable_col: str | None = None,
) -> list[FundusRecord]:
    """Records of one labels table whose images live in ``folder``; problems go to ``rep``."""
    listing = image_files(folder)
    used: set[Path] = set()
    seen: dict[str, int] = {}
    out: list[FundusRecord] = []
    for row in df.to_dict("records"):
        line = int(row["line"])
        name = str(row[id_col]).strip()
        where = f"{labels} line {line}"
        if not name or name.lower() == "nan":
            rep.error(f"{where}: empty {id_col!r}")
            continue
        path = _lookup(listing, name, exts)
        if path is not None:
            used.add(path)  # listed, whatever happens to the row below
        if gradable_col is not None and gradable_col in row:
            gval = row[gradable_col]
            if not (isinstance(gval, float) and np.isnan(gval)) and str(gval).strip() in ("0", "0.0", "False", "false"):
                rep.n_ungradable += 1
                continue
        try:
            grade = _parse_grade(row[grade_col], valid, ungradable)
        except ValueError as exc:
            rep.error(f"{where} ({name}): {exc}")
            continue
        if grade is None:
            rep.n_ungradable += 1
            continue
        if path is None:
            rep.error(f"{folder / name}: image listed in {labels.name} line {line} is missing on disk")
            continue
        stem = path.stem
        if stem in seen:
            rep.warn(f"{where}: {name} is listed again (first at line {seen[stem]}); keeping the first")
            continue
        seen[stem] = line
        out.append(FundusRecord(id=stem, image=path, grade=grade, split=split, source=where))
    _warn_unlisted(rep, listing, used, labels)
    return out


def _warn_unlisted(rep: IndexReport, listing: dict[str, Path], used: set[Path], labels: Path) -> None:
    for p in listing.values():
        if p not in used:
            rep.n_unlisted += 1
            rep.warn(f"{p}: image on disk is not listed in {labels.name}")


def lesion_masks(label_dir: Path, stem: str, dirs: dict[str, str], pattern: str) -> tuple[Path | None, ...]:
    """The mask file of each lesion (LESIONS order) of image ``stem`` under ``label_dir / dirs[lesion]``, named
    ``pattern`` (.tif, .tiff, .TIF or .png); None where there is none."""
    out: list[Path | None] = []
    for lesion in LESIONS:
        folder = label_dir / dirs[lesion]
        found = None
        for ext in (".tif", ".tiff", ".TIF", ".png"):
            cand = folder / (pattern.format(stem=stem, lesion=lesion) + ext)
            if cand.is_file():
                found = cand
                break
        out.append(found)
    return tuple(out)


def records_with_masks(
    rep: IndexReport, img_dir: Path, mask_dir: Path, dirs: dict[str, str], pattern: str, split: str
) -> list[FundusRecord]:
    """Records of one split of a lesion-segmentation set: one per image in ``img_dir``, with its mask files
    (:func:`lesion_masks` under ``mask_dir``). Every segmentation layout (IDRiD's, DDR's) shares these rules: a
    lesion folder that is missing is a warning (every mask of that lesion counts as absent, as a missing file
    does), and a split without images is fatal. Problems go to ``rep``."""
    for lesion, d in dirs.items():
        if not (mask_dir / d).is_dir():
            rep.warn(f"{mask_dir / d}: folder missing; every {lesion} mask of the {split} set is treated as absent")
    recs = []
    for p in image_files(img_dir).values():
        masks = lesion_masks(mask_dir, p.stem, dirs, pattern)
        recs.append(FundusRecord(id=p.stem, image=p, masks=masks, split=split, source=str(img_dir)))
    if not recs:
        rep.fatal(f"{img_dir}: no images")
    return recs
