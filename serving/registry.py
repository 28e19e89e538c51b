"""The champion registry: which bento serving should run, and how it got there.

``$SHOPREC_HOME/registry/champion.json`` names the current champion::

    {"run_id", "bento_tag", "promoted_at", "metrics", "previous": {run_id, bento_tag,
     promoted_at} | null}

It is replaced atomically (temp file in the same folder, fsync, ``os.replace``), so a reader —
``serving.serve`` picking its default target, an evaluation looking up the champion — sees the
old record or the new one, never half of one. Every promotion is also appended to
``registry/history.jsonl`` (one JSON object per line). ``champion.json`` is the authority; the
history is the audit log written right after it. Promotions are serialised by an ``flock`` on
``registry/.lock``, so two promoters cannot both read the same ``previous``.

This module also holds the check that a bento serves ONE run: :func:`check_same_run`.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shoprec.atomic import write_text_atomic
from shoprec.settings import Settings

CHAMPION_FILE = "champion.json"
HISTORY_FILE = "history.jsonl"


class ModelVersionMismatch(RuntimeError):
    """The models of a bento come from different training runs (or carry no run id)."""


def registry_dir(settings: Settings) -> Path:
    """``settings.home / "registry"``."""
    return settings.home / "registry"


def champion(settings: Settings) -> dict[str, Any] | None:
    """The current champion record, or ``None`` before the first promotion."""
    path = registry_dir(settings) / CHAMPION_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def history(settings: Settings) -> list[dict[str, Any]]:
    """Every promotion so far, oldest first."""
    path = registry_dir(settings) / HISTORY_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def bento_info(settings: Settings, bento_tag: str) -> dict[str, Any]:
    """The ``bento.yaml`` of ``bento_tag`` in the settings' BentoML store.

    Read as a file (no BentoML import: this runs in Airflow tasks and the CLI).

    Raises:
        ValueError: if the tag is not ``name:version``.
        FileNotFoundError: naming the path if the store has no such bento.
    """
    import yaml

    name, sep, version = bento_tag.partition(":")
    if not (name and sep and version) or version == "latest" or "/" in bento_tag:
        raise ValueError(f"bento tag must be an exact 'name:version', got {bento_tag!r}")
    path = settings.bentoml_home / "bentos" / name / version / "bento.yaml"
    if not path.exists():
        raise FileNotFoundError(f"bento {bento_tag} is not in the store ({path} is missing)")
    return yaml.safe_load(path.read_text())


@contextmanager
def _locked(settings: Settings) -> Iterator[Path]:
    folder = registry_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield folder
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def promote(settings: Settings, run_id: str, bento_tag: str,
            metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Make ``bento_tag`` (built from ``run_id``) the champion; return the new record.

    Promoting the current champion again is a no-op that returns the existing record (reruns
    and backfills change nothing).

    Args:
        settings: Locations (the registry and the BentoML store).
        run_id: The training run the bento was built from.
        bento_tag: Exact bento tag, as returned by ``serving.package.package``.
        metrics: The metrics that justified the promotion (the challenger's evaluation).

    Raises:
        FileNotFoundError: if the bento is not in the store.
        ValueError: if the bento was built from another run, or metrics are not strict JSON
            (NaN/inf or non-JSON values); the current champion is then left as it was.
    """
    if not run_id or not isinstance(run_id, str):
        raise ValueError(f"run_id must be a non-empty string, got {run_id!r}")
    built_from = (bento_info(settings, bento_tag).get("args") or {}).get("run_id")
    if built_from is not None and built_from != run_id:
        raise ValueError(f"bento {bento_tag} was built from run {built_from}, not {run_id}")
    with _locked(settings) as folder:
        current = champion(settings)
        if current and current["run_id"] == run_id and current["bento_tag"] == bento_tag:
            return current
        previous = None if current is None else {
            k: current[k] for k in ("run_id", "bento_tag", "promoted_at")}
        record = {"run_id": run_id, "bento_tag": bento_tag,
                  "promoted_at": datetime.now(UTC).isoformat(), "metrics": dict(metrics),
                  "previous": previous}
        try:
            text = json.dumps(record, indent=2, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise ValueError(f"cannot promote {run_id}: metrics are not strict JSON ({err})") \
                from err
        write_text_atomic(folder / CHAMPION_FILE, text + "\n", durable=True)
        _fsync_dir(folder)  # the rename itself survives a power cut
        with (folder / HISTORY_FILE).open("a") as log:
            log.write(json.dumps(record, allow_nan=False) + "\n")
            log.flush()
            os.fsync(log.fileno())
    return record


def check_same_run(retrieval_tag: str, retrieval_labels: Mapping[str, str], ranker_tag: str,
                   ranker_labels: Mapping[str, str], expected_run_id: str | None = None) -> str:
    """Return the run id both models carry; raise if they differ or one has none.

    The Bento service calls this before loading anything: serving a retrieval model of one run
    with the ranker of another would silently score candidates the ranker was never validated
    with, so the service refuses to start instead.

    Args:
        retrieval_tag: Tag of the retrieval model (for the message).
        retrieval_labels: Its BentoML labels.
        ranker_tag: Tag of the ranker model (for the message).
        ranker_labels: Its BentoML labels.
        expected_run_id: The run the bento was built for (its ``run_id`` build argument), if any.

    Raises:
        ModelVersionMismatch: naming both tags and run ids.
    """
    retr, rank = retrieval_labels.get("run_id"), ranker_labels.get("run_id")
    fix = "; package one run with `python -m serving.package RUN_DIR` and serve that bento"
    if not retr or not rank:
        raise ModelVersionMismatch(f"refusing to start: model {retrieval_tag} has run_id "
                                   f"{retr!r} and {ranker_tag} has {rank!r}; both need one{fix}")
    if retr != rank:
        raise ModelVersionMismatch(f"refusing to start: retrieval model {retrieval_tag} is from "
                                   f"run {retr} but ranker {ranker_tag} is from run {rank}{fix}")
    if expected_run_id and retr != expected_run_id:
        raise ModelVersionMismatch(f"refusing to start: the bento was built for run "
                                   f"{expected_run_id} but its models are from run {retr}{fix}")
    return retr
