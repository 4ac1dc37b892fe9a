"""The grid inventory for ``python -m deepmt plan``: record it by running the notebooks, and read it back.

``python -m deepmt plan --record-inventory`` executes every numbered notebook as ``./run_all.sh`` does
(``papermill NB OUT -k deepmt --cwd notebooks -p profile smoke``) under the ``smoke`` profile with every study's
full seed lists (``$DEEPMT_STUDY_SEEDS=all``, :func:`deepmt.studies.common.study_seeds`), ``$DEEPMT_NOTEBOOK`` set
per notebook and ``$DEEPMT_GRID_LOG`` naming a log (:mod:`deepmt.grid_log`). The experiment cache, figures and
tables go to a temporary folder (``$DEEPMT_CACHE``, ``$DEEPMT_FIGURES``, ``$DEEPMT_RESULTS``), so the committed
``results/`` and ``figures/`` stay as they are. A few minutes in all on a 2-core CPU.

The log is then tidied into :data:`INVENTORY` (one line per notebook and entry, in the order asked for; ``pid`` and
``time`` dropped, each batch renamed ``<notebook>#<n>``), so that recording the same grid twice gives the same file.
Smoke trainings are seconds long, and a recorded job maps onto any profile (:func:`deepmt.grid_log.entry_config`),
so the smoke grid stands for the quick one: every study sizes its grid by its parameters and seeds, never by the
profile (the profile-dependent branches of :mod:`deepmt.studies` change what is *evaluated* -- notebook 00's
measured images, notebook 10's degradation levels and timed images -- not what is trained).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from deepmt.errors import DeepMTError
from deepmt.grid_log import GRID_LOG_ENV, NOTEBOOK_ENV, read_inventory
from deepmt.utils import atomic_write_text, repo_root

#: the committed inventory of the current notebooks (recorded under smoke with every seed)
INVENTORY = "results/timing/grid_inventory.jsonl"


class InventoryError(DeepMTError):
    """The inventory cannot be recorded or read."""


def notebooks(folder: Path | None = None, only: str = "") -> list[Path]:
    """The numbered notebooks ``NN_*.ipynb`` in order (``only``: comma-separated number prefixes, as run_all.sh's)."""
    folder = folder or repo_root() / "notebooks"
    found = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    wanted = {s.strip() for s in only.split(",") if s.strip()}
    found = [p for p in found if not wanted or p.name[:2] in wanted]
    if not found:
        raise InventoryError(f"{folder}: no numbered notebooks{' matching --only ' + only if only else ''}")
    return found


def tidy(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records as committed: without ``pid`` / ``time``, batches renamed ``<notebook>#<n>`` in order of appearance."""
    names: dict[str, str] = {}
    counts: dict[str, int] = {}
    out = []
    for rec in records:
        rec = {k: v for k, v in rec.items() if k not in ("pid", "time")}
        b = rec.get("batch")
        if b is not None:
            if b not in names:
                nb = rec.get("notebook", "")
                counts[nb] = counts.get(nb, 0) + 1
                names[b] = f"{nb}#{counts[nb]}"
            rec["batch"] = names[b]
        out.append(rec)
    return out


def record_inventory(out: str | os.PathLike | None = None, profile: str = "smoke", only: str = "",
                     keep: bool = False, timeout_s: float = 1800.0) -> Path:
    """Run the notebooks under ``profile`` with every seed and write the tidied inventory to ``out``
    (default :data:`INVENTORY`). One progress line per notebook; a failing notebook raises
    :class:`InventoryError` naming its log (kept). ``keep`` keeps the temporary folder."""
    out = Path(out) if out else repo_root() / INVENTORY
    books = notebooks(only=only)
    tmp = Path(tempfile.mkdtemp(prefix="deepmt-inventory-"))
    log = tmp / "grid_log.jsonl"
    env = {**os.environ, "DEEPMT_PROFILE": profile, "DEEPMT_STUDY_SEEDS": "all", GRID_LOG_ENV: str(log),
           "DEEPMT_CACHE": str(tmp / "cache"), "DEEPMT_FIGURES": str(tmp / "figures"),
           "DEEPMT_RESULTS": str(tmp / "tables"), "MPLBACKEND": "Agg"}
    (tmp / "executed").mkdir()
    t_all = time.perf_counter()
    ok = False
    try:
        for i, nb in enumerate(books, 1):
            t0 = time.perf_counter()
            print(f"[{i}/{len(books)}] {nb.stem} (profile {profile}, every seed) ...", end=" ", flush=True)
            nb_log = tmp / f"{nb.stem}.log"
            cmd = [sys.executable, "-m", "papermill", str(nb), str(tmp / "executed" / nb.name), "-k", "deepmt",
                   "--cwd", str(nb.parent), "-p", "profile", profile]
            with open(nb_log, "w") as f:
                try:
                    rc = subprocess.run(cmd, env={**env, NOTEBOOK_ENV: nb.stem}, stdout=f, stderr=subprocess.STDOUT,
                                        timeout=timeout_s).returncode
                except subprocess.TimeoutExpired:
                    rc = -1
            if rc != 0:
                keep = True
                print("FAILED", flush=True)
                raise InventoryError(f"notebook {nb.name} failed under {profile} (log: {nb_log}); nothing written to {out}")
            n = len({r["entry"] for r in read_inventory(log) if r.get("notebook") == nb.stem}) if log.is_file() else 0
            print(f"{n} entries, {time.perf_counter() - t0:.0f} s", flush=True)
        records = tidy(read_inventory(log)) if log.is_file() else []
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
        ok = True
    finally:
        if keep or not ok:
            print(f"temporary folder kept: {tmp}", flush=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {out}: {len(records)} records, {len({r['entry'] for r in records})} distinct entries, "
          f"{time.perf_counter() - t_all:.0f} s", flush=True)
    return out


def load_inventory(path: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """The records of an inventory file (default :data:`INVENTORY`); :class:`InventoryError` when it is missing,
    empty or malformed."""
    path = Path(path) if path else repo_root() / INVENTORY
    if not path.is_file():
        raise InventoryError(f"{path}: no grid inventory; record one with `python -m deepmt plan --record-inventory`")
    try:
        records = read_inventory(path)
    except ValueError as exc:
        raise InventoryError(str(exc)) from None
    if not records:
        raise InventoryError(f"{path}: the inventory holds no entries")
    return records


#: the cache entries the committed tables were computed from: every trained run in the cache of the last complete
#: ``./run_all.sh`` of a real profile (written after it by ``python -m deepmt bench --grid``)
TABLE_ENTRIES = "results/timing/grid_compute.csv"


def needed_entries(records: list[dict[str, Any]], profile: str = "quick") -> dict[str, list[str]]:
    """The cache entries the notebooks need under ``profile`` as main's code names them (method + config key, and
    the base key and start stage of a warm start: :func:`deepmt.grid_log.entry_name`), each with the notebooks
    that need it. Entries of methods that train nothing (``bicubic``) are left out."""
    from deepmt.grid_log import mapped_entry
    from deepmt.models.methods import METHODS

    out: dict[str, list[str]] = {}
    for rec in records:
        method = rec["method"]
        if method == "bicubic" or method not in METHODS:
            continue
        name = mapped_entry(rec, profile)[1]
        out.setdefault(name, [])
        if rec.get("notebook", "") not in out[name]:
            out[name].append(rec.get("notebook", ""))
    return out


def stale_entries(records: list[dict[str, Any]], made_from: set[str], profile: str = "quick") -> dict[str, list[str]]:
    """The entries main's code needs under ``profile`` that the committed tables were not computed from
    (``made_from``: :data:`TABLE_ENTRIES`' ``entry`` column), with the notebooks that need them. Non-empty when a
    default that changes cache keys changed without the tables being made again: those tables rest on entries
    main's code would no longer produce."""
    return {name: nbs for name, nbs in needed_entries(records, profile).items() if name not in made_from}


__all__ = ["INVENTORY", "TABLE_ENTRIES", "InventoryError", "load_inventory", "needed_entries", "notebooks",
           "record_inventory", "stale_entries", "tidy"]
