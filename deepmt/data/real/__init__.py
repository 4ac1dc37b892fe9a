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

One module per concern: :mod:`~deepmt.data.real.records` (records, problems, the index report),
:mod:`~deepmt.data.real.labels` (required files, labels tables matched to images, mask files),
:mod:`~deepmt.data.real.layouts` (each format's layout and indexer, :func:`index_dataset`),
:mod:`~deepmt.data.real.dataset` (:class:`RealFundusDataset` and its cache) and :mod:`~deepmt.data.real.splits`
(splits carved where missing, :func:`build_real_splits`). Import the public names from here.
"""

from deepmt.data.real.dataset import PREPROCESS_VERSION, RealFundusDataset
from deepmt.data.real.labels import read_labels_table
from deepmt.data.real.layouts import (
    COMPANION,
    DDR_SPLIT_DIRS,
    FORMATS,
    IDRID_LESION_DIRS,
    IDRID_SPLIT_DIRS,
    INDEXERS,
    LAYOUTS,
    MESSIDOR2_HEADERS,
    PART_DIRS,
    check_format_and_root,
    index_dataset,
)
from deepmt.data.real.records import FundusRecord, IndexReport, Problem, ProblemsBySeverity
from deepmt.data.real.splits import TEST_FRACTION, assign_splits, build_real_splits, raise_on_problems, stratified_split

__all__ = [
    "FORMATS",
    "LAYOUTS",
    "FundusRecord",
    "IndexReport",
    "Problem",
    "ProblemsBySeverity",
    "RealFundusDataset",
    "assign_splits",
    "build_real_splits",
    "index_dataset",
    "read_labels_table",
    "stratified_split",
    "COMPANION",
    "DDR_SPLIT_DIRS",
    "IDRID_LESION_DIRS",
    "IDRID_SPLIT_DIRS",
    "INDEXERS",
    "MESSIDOR2_HEADERS",
    "PART_DIRS",
    "PREPROCESS_VERSION",
    "TEST_FRACTION",
    "check_format_and_root",
    "raise_on_problems",
]
