"""Loaders for the public fundus datasets, in their published layouts (``docs/METHOD.md``).

The paper trains on DDR (13,673 graded images, 757 with lesion masks) and IDRiD (516 graded, 81 with masks),
resized to 1024 x 1024 HR and degraded by bicubic x4 to 256 x 256 LR. Formats (``cfg.data.dataset``):

=============  ===================================================================  ==================
format         layout under ``cfg.data.root``                                        splits
=============  ===================================================================  ==================
``idrid-seg``  ``A. Segmentation/1. Original Images/{a. Training Set,b. Testing Set}``  official train/test
               + masks ``2. All Segmentation Groundtruths/.../{1. Microaneurysms,..}``   (+ val from train)
``idrid``      ``B. Disease Grading/1. Original Images/...`` + ``2. Groundtruths/*.csv``  official train/test
``ddr``        ``DR_grading/{train,valid,test}/*.jpg`` + ``{train,valid,test}.txt``       official
``ddr-seg``    ``lesion_segmentation/{train,valid,test}/image`` + ``label/{EX,HE,MA,SE}`` official
``messidor1``  ``Annotation_Base{11..34}.xls`` beside ``Base11..Base34/*.tif`` (0-3)   stratified
``messidor2``  ``messidor_data.csv`` (adjudicated or Kaggle header) + ``IMAGES/``         stratified
``aptos``      ``train.csv`` + ``train_images/<id_code>.png``                          stratified
``eyepacs``    ``trainLabels.csv`` + ``train/<image>.jpeg``                            stratified
=============  ===================================================================  ==================

Indexing (:func:`index_dataset`) lists records without decoding images, and collects every problem:
``fatal`` (layout/labels-file problems: missing folder or labels file, missing columns), ``error``
(row problems: grade outside the dataset's range, image listed but missing on disk) and ``warning``
(images on disk but not listed, duplicate rows, a whole lesion folder missing). :func:`build_real_splits`
raises :class:`DataError` on a fatal problem, and on errors unless ``skip_bad=True`` (then the bad rows are
skipped and counted in ``dataset.report``). Ungradable images (DDR grade 5, Messidor-2 not gradable) are
excluded and counted (``report.n_ungradable``, logged).

Where a dataset has no validation split, a deterministic stratified one (``cfg.val_fraction``, ``cfg.seed``,
scikit-learn ``train_test_split`` stratified on grade) is carved from the training set; where it has no
test labels either (Messidor, APTOS, EyePACS train sets), a stratified test split of :data:`TEST_FRACTION`
is carved first.

:class:`RealFundusDataset` returns :class:`deepmt.data.sample.Sample` dicts: the photo goes through
:func:`deepmt.data.preprocess.preprocess_fundus` (FOV crop, square pad, resize to ``cfg.hr_size``), cached
per image as uint8 under ``deepmt.utils.cache_dir("real", <format>, <key>)``, and ``lr`` is made by
:func:`deepmt.data.degradation.degrade` at ``cfg.scale``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from deepmt import LESIONS
from deepmt.data.io import is_image_file, read_image, read_mask
from deepmt.data.preprocess import preprocess_fundus
from deepmt.data.sample import NO_GRADE
from deepmt.errors import DataError
from deepmt.utils import atomic_path, cache_dir

if TYPE_CHECKING:  # pragma: no cover
    from deepmt.config import DataConfig

log = logging.getLogger(__name__)

#: Fraction of the labelled images held out as the test split for datasets without test labels.
TEST_FRACTION = 0.2
#: Bumped whenever preprocessing changes, so stale cache entries are not reused.
PREPROCESS_VERSION = 1

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


# --------------------------------------------------------------------------- records and problems
@dataclass
class FundusRecord:
    """One image of a dataset index (no pixels loaded)."""

    id: str
    image: Path
    grade: int = NO_GRADE
    #: one path per lesion in LESIONS order (None = no mask file = lesion absent); None = not annotated at all
    masks: tuple[Path | None, ...] | None = None
    split: str = "train"
    source: str = ""  # where the record came from, e.g. "train.txt line 12"

    @property
    def mask_present(self) -> tuple[bool, ...]:
        return (self.masks is not None,) * len(LESIONS)


@dataclass
class Problem:
    """One problem found while indexing or checking; ``message`` always names the file."""

    severity: str  # "fatal" | "error" | "warning"
    message: str

    def __str__(self) -> str:
        return f"[{self.severity}] {self.message}"


@dataclass
class IndexReport:
    """The records of a dataset root per official split, and everything found wrong with it."""

    fmt: str
    root: Path
    splits: dict[str, list[FundusRecord]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    n_ungradable: int = 0
    n_unlisted: int = 0
    n_skipped: int = 0

    def fatal(self, message: str) -> None:
        self.problems.append(Problem("fatal", message))

    def error(self, message: str) -> None:
        self.problems.append(Problem("error", message))

    def warn(self, message: str) -> None:
        self.problems.append(Problem("warning", message))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity in ("fatal", "error")]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def records(self) -> list[FundusRecord]:
        return [r for recs in self.splits.values() for r in recs]

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Record a DataError raised inside the block as a fatal problem, and go on."""
        try:
            yield
        except DataError as exc:
            self.fatal(str(exc))


# --------------------------------------------------------------------------- helpers
def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DataError(f"{path}: folder not found ({what})")
    return path


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: file not found ({what})")
    return path


def _listing(folder: Path) -> dict[str, Path]:
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

    _require_file(path, "labels file")
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


def _records_from_table(
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
    listing = _listing(folder)
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


def _lesion_masks(label_dir: Path, stem: str, dirs: dict[str, str], pattern: str) -> tuple[Path | None, ...]:
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


# --------------------------------------------------------------------------- one indexer per format
def _index_idrid_seg(root: Path, rep: IndexReport) -> None:
    base = _require_dir(root / PART_DIRS["idrid-seg"], "IDRiD segmentation part")
    for split, sdir in IDRID_SPLIT_DIRS.items():
        with rep.guard():
            img_dir = _require_dir(base / "1. Original Images" / sdir, f"IDRiD {split} images")
            gt_dir = _require_dir(base / "2. All Segmentation Groundtruths" / sdir, f"IDRiD {split} masks")
            for lesion, d in IDRID_LESION_DIRS.items():
                if not (gt_dir / d).is_dir():
                    rep.warn(f"{gt_dir / d}: folder missing; every {lesion} mask of the {split} set is treated as absent")
            recs = []
            for p in _listing(img_dir).values():
                masks = _lesion_masks(gt_dir, p.stem, IDRID_LESION_DIRS, "{stem}_{lesion}")
                recs.append(FundusRecord(id=p.stem, image=p, masks=masks, split=split, source=str(img_dir)))
            if not recs:
                rep.fatal(f"{img_dir}: no images")
            rep.splits[split] = recs


def _index_idrid(root: Path, rep: IndexReport) -> None:
    base = _require_dir(root / PART_DIRS["idrid"], "IDRiD grading part")
    label_files = {
        "train": "a. IDRiD_Disease Grading_Training Labels.csv",
        "test": "b. IDRiD_Disease Grading_Testing Labels.csv",
    }
    for split, sdir in IDRID_SPLIT_DIRS.items():
        with rep.guard():
            img_dir = _require_dir(base / "1. Original Images" / sdir, f"IDRiD {split} images")
            labels = base / "2. Groundtruths" / label_files[split]
            df = read_labels_table(labels, ["Image name", "Retinopathy grade"])
            rep.splits[split] = _records_from_table(
                rep, df, labels, "Image name", "Retinopathy grade", img_dir, split, range(5), (".jpg", ".jpeg", ".png", ".tif")
            )


def _read_ddr_txt(path: Path, rep: IndexReport):
    import pandas as pd

    _require_file(path, "DDR labels file")
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
    base = _require_dir(root / PART_DIRS["ddr"], "DDR grading part")
    for split, sdir in DDR_SPLIT_DIRS.items():
        with rep.guard():
            img_dir = _require_dir(base / sdir, f"DDR {split} images")
            labels = base / f"{sdir}.txt"
            df = _read_ddr_txt(labels, rep)
            rep.splits[split] = _records_from_table(
                rep, df, labels, "file", "grade", img_dir, split, range(5), (".jpg", ".jpeg", ".png"), ungradable=(5,)
            )


def _index_ddr_seg(root: Path, rep: IndexReport) -> None:
    base = _require_dir(root / PART_DIRS["ddr-seg"], "DDR lesion segmentation part")
    dirs = {lesion: lesion for lesion in LESIONS}
    for split, sdir in DDR_SPLIT_DIRS.items():
        with rep.guard():
            sbase = _require_dir(base / sdir, f"DDR {split} segmentation set")
            img_dir = _require_dir(sbase / "image", f"DDR {split} images")
            label_dir = next((sbase / n for n in ("label", "segmentation label") if (sbase / n).is_dir()), None)
            if label_dir is None:
                raise DataError(f"{sbase / 'label'}: folder not found (DDR {split} masks; also tried 'segmentation label')")
            for lesion in LESIONS:
                if not (label_dir / lesion).is_dir():
                    rep.warn(f"{label_dir / lesion}: folder missing; every {lesion} mask of the {split} set is treated as absent")
            recs = []
            for p in _listing(img_dir).values():
                masks = _lesion_masks(label_dir, p.stem, dirs, "{stem}")
                recs.append(FundusRecord(id=p.stem, image=p, masks=masks, split=split, source=str(img_dir)))
            if not recs:
                rep.fatal(f"{img_dir}: no images")
            rep.splits[split] = recs


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
            _require_dir(folder, f"images of {sheet.name}")
            df = read_labels_table(sheet, ["Image name", "Retinopathy grade"])
            for r in _records_from_table(rep, df, sheet, "Image name", "Retinopathy grade", folder, "train", range(4), (".tif", ".tiff")):
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
    img_dir = _require_dir(root / "IMAGES", "Messidor-2 images")
    df = read_labels_table(labels, *MESSIDOR2_HEADERS)
    id_col, grade_col = next(h for h in MESSIDOR2_HEADERS if all(c in df.columns for c in h))
    rep.splits["train"] = _records_from_table(
        rep, df, labels, id_col, grade_col, img_dir, "train", range(5), (".png", ".jpg", ".tif", ".JPG"),
        gradable_col="adjudicated_gradable" if "adjudicated_gradable" in df.columns else None,
    )


def _index_aptos(root: Path, rep: IndexReport) -> None:
    labels = root / "train.csv"
    img_dir = _require_dir(root / "train_images", "APTOS training images")
    df = read_labels_table(labels, ["id_code", "diagnosis"])
    rep.splits["train"] = _records_from_table(rep, df, labels, "id_code", "diagnosis", img_dir, "train", range(5), (".png", ".jpg"))


def _index_eyepacs(root: Path, rep: IndexReport) -> None:
    labels = root / "trainLabels.csv"
    img_dir = _require_dir(root / "train", "EyePACS training images")
    df = read_labels_table(labels, ["image", "level"])
    rep.splits["train"] = _records_from_table(rep, df, labels, "image", "level", img_dir, "train", range(5), (".jpeg", ".jpg", ".png"))


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


# --------------------------------------------------------------------------- splits
def stratified_split(
    records: Sequence[FundusRecord], fraction: float, seed: int
) -> tuple[list[FundusRecord], list[FundusRecord]]:
    """Deterministically hold out ``fraction`` of ``records``, stratified on grade where possible.

    Stratification needs every grade at least twice and room for every grade on both sides; otherwise
    (tiny sets, segmentation sets without grades) the split is a plain seeded shuffle.
    """
    from sklearn.model_selection import train_test_split

    records = sorted(records, key=lambda r: r.id)
    if fraction <= 0 or len(records) < 2:
        return list(records), []
    n_held = min(len(records) - 1, max(1, int(round(fraction * len(records)))))
    grades = np.array([r.grade for r in records])
    classes, counts = np.unique(grades, return_counts=True)
    can_stratify = len(classes) > 1 and counts.min() >= 2 and len(classes) <= n_held <= len(records) - len(classes)
    keep, held = train_test_split(
        records, test_size=n_held, random_state=seed, shuffle=True, stratify=grades if can_stratify else None
    )
    return sorted(keep, key=lambda r: r.id), sorted(held, key=lambda r: r.id)


def assign_splits(rep: IndexReport, val_fraction: float, seed: int) -> dict[str, list[FundusRecord]]:
    """Official splits where they exist, stratified test/val splits where they do not."""
    s = {k: list(v) for k, v in rep.splits.items()}
    if "test" not in s:
        s["train"], s["test"] = stratified_split(s.get("train", []), TEST_FRACTION, seed)
    if "val" not in s:
        s["train"], s["val"] = stratified_split(s.get("train", []), val_fraction, seed)
    for split, recs in s.items():
        for r in recs:
            r.split = split
    return s


# --------------------------------------------------------------------------- dataset
def _file_sig(path: Path | None) -> str:
    if path is None:
        return "-"
    st = path.stat()
    return f"{path.name}:{st.st_size}:{st.st_mtime_ns}"


class RealFundusDataset(Dataset):
    """A real fundus dataset split as :class:`deepmt.data.sample.Sample` dicts (preprocessed HR cached).

    Attributes: ``records`` (the :class:`FundusRecord` list), ``grades`` (int array, -1 = none),
    ``report`` (the :class:`IndexReport` of the root), ``excluded_ungradable`` (count), ``dataset``, ``split``.
    """

    def __init__(
        self,
        records: Sequence[FundusRecord],
        cfg: "DataConfig",
        dataset: str,
        split: str,
        root: str | Path,
        report: IndexReport | None = None,
    ) -> None:
        if cfg.hr_size % cfg.scale:
            raise DataError(f"data.hr_size={cfg.hr_size} is not divisible by data.scale={cfg.scale}")
        self.records = list(records)
        self.cfg = cfg
        self.dataset = dataset
        self.split = split
        self.root = Path(root)
        self.report = report
        self.excluded_ungradable = report.n_ungradable if report else 0
        self.grades = np.array([r.grade for r in self.records], dtype=np.int64)
        key = hashlib.sha1(f"{self.root.resolve()}|{cfg.hr_size}|v{PREPROCESS_VERSION}".encode()).hexdigest()[:12]
        self.cache = cache_dir("real", dataset, key)

    def __len__(self) -> int:
        return len(self.records)

    def class_counts(self) -> np.ndarray:
        """Images per grade 0-4 (ungraded images are not counted)."""
        g = self.grades[self.grades >= 0]
        return np.bincount(g, minlength=5)

    # ----------------------------------------------------------------- cache
    def _cache_file(self, rec: FundusRecord) -> Path:
        paths = [rec.image, *(rec.masks or ())]
        sig = "|".join([str(rec.image.relative_to(self.root)) if rec.image.is_relative_to(self.root) else str(rec.image)]
                       + [_file_sig(p) for p in paths] + [str(rec.masks is not None)])
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", rec.id)[:80]
        return self.cache / f"{safe}-{hashlib.sha1(sig.encode()).hexdigest()[:12]}.npz"

    def _load_cached(self, path: Path, annotated: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
        if not path.is_file():
            return None
        n = self.cfg.hr_size
        try:
            with np.load(path) as z:
                hr, fov = z["hr"], z["fov"]
                masks = z["masks"] if annotated else None
            ok = hr.shape == (n, n, 3) and hr.dtype == np.uint8 and fov.shape == (n, n)
            ok = ok and (masks is None or masks.shape == (len(LESIONS), n, n))
            if ok:
                return hr, fov.astype(bool), None if masks is None else masks.astype(bool)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            pass
        log.warning("%s: corrupt cache entry, recomputing", path)
        return None

    def load_preprocessed(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(hr uint8 (n,n,3), fov bool (n,n), masks bool (4,n,n) or None)`` of record ``index``, cached."""
        rec = self.records[index]
        path = self._cache_file(rec)
        cached = self._load_cached(path, rec.masks is not None)
        if cached is not None:
            return cached
        image = read_image(rec.image)
        masks = None
        if rec.masks is not None:
            masks = np.zeros((len(LESIONS), *image.shape[:2]), dtype=bool)
            for i, mp in enumerate(rec.masks):
                if mp is None:
                    continue
                m = read_mask(mp)
                if m.shape != image.shape[:2]:
                    raise DataError(
                        f"{mp}: mask size {m.shape[1]}x{m.shape[0]} differs from its image {rec.image} "
                        f"({image.shape[1]}x{image.shape[0]})"
                    )
                masks[i] = m
        hr, fov, hr_masks = preprocess_fundus(image, self.cfg.hr_size, masks, name=str(rec.image))
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                if hr_masks is None:
                    np.savez(f, hr=hr, fov=fov)
                else:
                    np.savez(f, hr=hr, fov=fov, masks=hr_masks)
        return hr, fov, hr_masks

    # ----------------------------------------------------------------- samples
    def __getitem__(self, index: int) -> dict:
        from deepmt.data.degradation import degrade_config

        rec = self.records[index]
        hr_u8, fov, masks = self.load_preprocessed(index)
        hr = torch.from_numpy(np.ascontiguousarray(hr_u8)).permute(2, 0, 1).float().div_(255.0)
        n = self.cfg.hr_size
        lr = degrade_config(hr, self.cfg, seed=self.cfg.seed * 1_000_003 + index)
        return {
            "hr": hr,
            "lr": lr,
            "masks": torch.from_numpy(masks).float() if masks is not None else torch.zeros(len(LESIONS), n, n),
            "mask_present": torch.tensor(rec.mask_present, dtype=torch.bool),
            "fov": torch.from_numpy(fov).float()[None],
            "grade": torch.tensor(rec.grade, dtype=torch.int64),
            "id": rec.id,
        }


def raise_on_problems(rep: IndexReport, skip_bad: bool) -> None:
    """DataError for fatal problems (always) and errors (unless ``skip_bad``: then they are counted)."""
    fatal = [p for p in rep.problems if p.severity == "fatal"]
    errors = [p for p in rep.problems if p.severity == "error"]
    hint = f"run `python -m deepmt data check --format {rep.fmt} {rep.root}` to list every problem"
    if fatal or (errors and not skip_bad):
        bad = fatal or errors
        more = len(rep.errors) - 1
        extra = f" (and {more} more problem(s); {hint})" if more > 0 else ""
        raise DataError(bad[0].message + extra)
    if errors:
        rep.n_skipped = len(errors)
        log.warning("%s (%s): skipped %d bad row(s) (skip_bad=True); %s", rep.root, rep.fmt, len(errors), hint)
    if rep.warnings:
        log.warning("%s (%s): %d warning(s), e.g. %s", rep.root, rep.fmt, len(rep.warnings), rep.warnings[0].message)


def build_real_splits(
    cfg: "DataConfig", splits: Sequence[str] = ("train", "val", "test"), skip_bad: bool = False
) -> dict[str, Dataset]:
    """The requested splits of the real dataset ``cfg.dataset`` at ``cfg.root`` (see the module docstring).

    Augmentation of the train split is added by :func:`deepmt.data.build_datasets`, for every dataset alike.
    """
    rep = index_dataset(cfg.dataset, cfg.root)
    raise_on_problems(rep, skip_bad)
    assigned = assign_splits(rep, cfg.val_fraction, cfg.seed)
    out: dict[str, Dataset] = {}
    for split in splits:
        if split not in assigned:
            raise DataError(f"unknown split {split!r}; choose from {sorted(assigned)}")
        if not assigned[split]:
            raise DataError(f"{rep.root}: the {split} split of {cfg.dataset!r} is empty (too few usable images)")
        out[split] = RealFundusDataset(assigned[split], cfg, cfg.dataset, split, rep.root, rep)
    return out


__all__ = [
    "FORMATS",
    "LAYOUTS",
    "FundusRecord",
    "IndexReport",
    "Problem",
    "RealFundusDataset",
    "assign_splits",
    "build_real_splits",
    "index_dataset",
    "read_labels_table",
    "stratified_split",
]
