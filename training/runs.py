"""Layout of a training run and the data split every stage of a run shares.

A run is ``models/<run_id>/`` with one folder per independently trained *part*::

    retrieval/  user_tower/ item_tower/ item_index.faiss item_ids.npy manifest.json metrics.json
    ranker/     ranker/ manifest.json metrics.json
    metrics.json     (run summary: both parts' metrics, written once both exist)
    evaluation.json  (challenger vs champion, :func:`training.evaluate.evaluate`)
    gate.json        (promotion decision, :func:`training.gate.gate_run`)

Each part folder holds exactly what one BentoML model holds, so the two parts can be trained by
two Airflow tasks in separate processes at the same time: each builds its part in a hidden
temporary sibling and renames it into place, so a retried task replaces only its own part and a
reader never sees a half-written one (only, for an instant, a missing one). ``serving.package``
knows the same two folder names (serving never imports training; docs/architecture.md is the
interface).

Both parts and the evaluation split the CURRENT datasets at one cutoff: the last
:data:`VALIDATION_FRACTION` of the time span the two datasets cover is held out.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprec.atomic import write_text_atomic
from shoprec.settings import Settings

RETRIEVAL_PART = "retrieval"
RANKER_PART = "ranker"
PARTS = (RETRIEVAL_PART, RANKER_PART)
RANKER_SET = "ranker.parquet"
RETRIEVAL_SET = "retrieval.parquet"
TS_COL = "event_ts"
VALIDATION_FRACTION = 0.1
MANIFEST = "manifest.json"
METRICS = "metrics.json"
PART_FILES = {RETRIEVAL_PART: ("user_tower", "item_tower", "item_index.faiss", "item_ids.npy"),
              RANKER_PART: ("ranker", "checkpoints", "ranker_spec.json")}
"""What each part holds besides its manifest and metrics."""
OPTIONAL_FILES = frozenset({"item_tower", "checkpoints", "ranker_spec.json"})
"""Not served: the item tower is offline only; a zoo ranker's checkpoint and spec let the next
run warm-start from it (an adopted part keeps them, so the chain is not broken)."""
_RUN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,199}")


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is a safe folder name, else raise ``ValueError`` saying why.

    Run ids become folder names and BentoML labels; a ``/`` or a leading dot would write
    outside the run folder or hide the run from listings.
    """
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"run_id {run_id!r} must be 1-200 characters of letters, digits, "
                         "'_', '-', '.', '+' and must not start with '.', '-' or '+'")
    return run_id


def run_dir(settings: Settings, run_id: str) -> Path:
    """``settings.models_dir / run_id`` (the id is checked first)."""
    return settings.models_dir / check_run_id(run_id)


def part_dirs(path: Path) -> tuple[Path, Path]:
    """``(retrieval folder, ranker folder)`` of the run at ``path``.

    Runs written before the split into parts kept everything in the run folder itself; for
    those both folders are ``path``, so an older champion stays comparable.
    """
    path = Path(path)
    if (path / RETRIEVAL_PART).is_dir() or (path / RANKER_PART / RANKER_PART).is_dir():
        return path / RETRIEVAL_PART, path / RANKER_PART
    return path, path


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs: temporary folders named after a dead one are junk."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def writing_part(settings: Settings, run_id: str, part: str) -> Iterator[Path]:
    """Yield a fresh temporary folder; on success it becomes ``models/<run_id>/<part>``.

    On any exception the temporary folder is deleted and an existing part is left untouched.
    Leftovers of a killed earlier attempt of the same part are removed first (only those whose
    process is gone, so a concurrently running *other* part is never disturbed).
    """
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; expected one of {PARTS}")
    root = run_dir(settings, run_id)
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(f".{part}.*-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    tmp, old = root / f".{part}.tmp-{os.getpid()}", root / f".{part}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        final = root / part
        if final.exists():
            final.rename(old)  # rename(2) cannot replace a non-empty folder in one step
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def adopt_part(settings: Settings, run_id: str, part: str, source_run_id: str) -> Path:
    """Copy ``part`` of an earlier run (usually the champion) into run ``run_id``.

    For runs where the operator retrains only one model: the run still gets both parts, is
    evaluated, packaged and served as ONE unit, so a bento never pairs models that were not
    evaluated together. The copied manifest names ``run_id`` and records ``adopted_from``.

    Raises:
        FileNotFoundError: naming what the source run lacks.
        ValueError: for an unknown part or ``source_run_id == run_id``.
    """
    if part not in PARTS or source_run_id == run_id:
        raise ValueError(f"cannot adopt part {part!r} of run {source_run_id!r} into {run_id!r}")
    retr, rank = part_dirs(run_dir(settings, source_run_id))
    src = retr if part == RETRIEVAL_PART else rank
    required = [n for n in PART_FILES[part] if n not in OPTIONAL_FILES]
    missing = [str(src / n) for n in required if not (src / n).exists()]
    if missing:
        raise FileNotFoundError(f"run {source_run_id} has no complete {part} part: {missing}")
    with writing_part(settings, run_id, part) as tmp:
        for name in (*PART_FILES[part], METRICS):
            if (src / name).is_dir():
                shutil.copytree(src / name, tmp / name)
            elif (src / name).exists():
                shutil.copy2(src / name, tmp / name)
        manifest = read_json(src / MANIFEST) if (src / MANIFEST).exists() else {}
        write_json(tmp / MANIFEST, {**manifest, "run_id": run_id, "part": part,
                                    "adopted_from": source_run_id})
    return run_dir(settings, run_id) / part


def clean_json(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf become null (strict JSON), numpy scalars become Python numbers."""
    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_json(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, pd.Timestamp):
        return obj.isoformat()
    return obj


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write strict JSON atomically (temp file + ``os.replace``): never a half-written file."""
    write_text_atomic(path, json.dumps(clean_json(payload), indent=2, allow_nan=False) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object; ``FileNotFoundError`` names the file."""
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    return json.loads(path.read_text())


def time_cutoff(timestamps: list[pd.Series], holdout: float = VALIDATION_FRACTION) -> pd.Timestamp:
    """Timestamp after which the last ``holdout`` share of the covered TIME span starts.

    One cutoff for both datasets, so neither model is trained on a period the other is
    evaluated on, and the split mimics deployment (train on the past, serve the future).
    """
    ts = pd.concat([pd.to_datetime(t, utc=True) for t in timestamps if len(t)])
    if ts.empty:
        raise ValueError("training sets are empty: nothing to split")
    lo, hi = ts.min(), ts.max()
    return lo + (hi - lo) * (1.0 - holdout)


def split_by_time(df: pd.DataFrame, cutoff: pd.Timestamp,
                  ts_col: str = TS_COL) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(rows before cutoff, rows at/after cutoff)``, each with a fresh index."""
    late = pd.to_datetime(df[ts_col], utc=True) >= cutoff
    return df[~late].reset_index(drop=True), df[late].reset_index(drop=True)


def _dataset_path(settings: Settings, name: str) -> Path:
    path = settings.datasets_dir / name
    if not path.exists():
        raise FileNotFoundError(f"training set {path} is missing; build it with "
                                "feature_repo.training_set.build_training_sets first")
    return path


def dataset_cutoff(settings: Settings) -> pd.Timestamp:
    """The shared cutoff, computed from the ``event_ts`` columns of BOTH current datasets."""
    return time_cutoff([pd.read_parquet(_dataset_path(settings, n), columns=[TS_COL])[TS_COL]
                        for n in (RANKER_SET, RETRIEVAL_SET)])


def load_split(settings: Settings, dataset: str,
               cutoff: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, held-out)`` rows of ``datasets/<dataset>`` split at ``cutoff``."""
    return split_by_time(pd.read_parquet(_dataset_path(settings, dataset)), cutoff)


def sample_rows(df: pd.DataFrame, sample_size: int | None, seed: int) -> pd.DataFrame:
    """A deterministic sample of ``sample_size`` rows (all rows when ``None`` or larger).

    Rows keep their time order, so a quick run from the UI sees the same kind of data as a
    full one, only less of it.
    """
    if sample_size is None or sample_size >= len(df):
        return df
    if sample_size < 1:
        raise ValueError(f"sample_size must be a positive number of rows, got {sample_size}")
    return df.sample(n=int(sample_size), random_state=seed).sort_index().reset_index(drop=True)


def run_summary(path: Path) -> dict[str, Any]:
    """Both parts' metrics in one dict (the run-level ``metrics.json`` layout).

    Raises:
        FileNotFoundError: naming the part whose ``metrics.json`` is missing.
    """
    retr_dir, rank_dir = part_dirs(path)
    retr, rank = read_json(retr_dir / METRICS), read_json(rank_dir / METRICS)
    if retr_dir == rank_dir:  # a pre-parts run already has the summary layout
        return retr
    return {"retrieval": retr.get("retrieval"), "ranker": rank.get("ranker"),
            "train_rows": rank.get("train_rows"),
            "retrieval_train_rows": retr.get("train_rows"),
            "validation_rows": rank.get("validation_rows"),
            "retrieval_validation_rows": retr.get("validation_rows"),
            "validation_users": retr.get("validation_users"),
            "catalogue_items": retr.get("catalogue_items"),
            "split_cutoff": {"retrieval": retr.get("split_cutoff"),
                             "ranker": rank.get("split_cutoff")},
            "training": {"two_tower": retr.get("training"), "ranker": rank.get("training")}}


def write_run_summary(settings: Settings, run_id: str) -> Path:
    """Write ``models/<run_id>/metrics.json`` from both parts; return its path."""
    path = run_dir(settings, run_id)
    write_json(path / METRICS, run_summary(path))
    return path / METRICS
