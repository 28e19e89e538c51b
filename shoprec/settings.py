"""Runtime settings: where data, stores and models live.

Settings are plain values passed as arguments. Only entry points (the CLI, DAG tasks, the
Bento service, the Feast definition files) call :meth:`Settings.from_env`; library code never
reads the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

ENV_HOME = "SHOPREC_HOME"
ENV_CONTRACT = "SHOPREC_CONTRACT"
DEFAULT_CONTRACT = "shoprec.contract:CONTRACT"


@dataclass(frozen=True)
class Settings:
    """Filesystem layout of one ShopRec installation (the embedded defaults).

    Attributes:
        home: Root folder for all state (``SHOPREC_HOME``, default ``./var``).
        contract: ``module:attribute`` of the feature contract (``SHOPREC_CONTRACT``).
        seed: Seed for anything random (data generation, shuffles, model init).
    """

    home: Path
    contract: str = DEFAULT_CONTRACT
    seed: int = 42

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``SHOPREC_HOME`` / ``SHOPREC_CONTRACT``; call at entry points."""
        env = os.environ if env is None else env
        home = Path(env.get(ENV_HOME, "var")).expanduser().resolve()
        return cls(home=home, contract=env.get(ENV_CONTRACT, DEFAULT_CONTRACT))

    def with_home(self, home: Path) -> Settings:
        """Return a copy rooted at ``home`` (used by tests and backfills)."""
        return replace(self, home=Path(home).resolve())

    def env(self) -> dict[str, str]:
        """Environment that lets a child process (feast, bentoml) see these settings."""
        return {ENV_HOME: str(self.home), ENV_CONTRACT: self.contract,
                "BENTOML_HOME": str(self.bentoml_home)}

    @property
    def landing_dir(self) -> Path:
        """Incoming event files and item/user tables, as produced by shops or the generator."""
        return self.home / "landing"

    @property
    def events_dir(self) -> Path:
        """Date-partitioned Parquet event store: ``event_date=YYYY-MM-DD/*.parquet``."""
        return self.home / "events"

    @property
    def staging_dir(self) -> Path:
        """Parsed batches waiting for validation; nothing downstream reads them."""
        return self.home / "staging"

    @property
    def tables_dir(self) -> Path:
        """Current item and user tables (``items.parquet``, ``users.parquet``)."""
        return self.home / "tables"

    @property
    def quarantine_dir(self) -> Path:
        """Rejected rows, each with the reason it was rejected."""
        return self.home / "quarantine"

    @property
    def features_dir(self) -> Path:
        """Offline feature snapshots read by the Feast file offline store."""
        return self.home / "features"

    @property
    def feast_dir(self) -> Path:
        """Generated ``feature_store.yaml``, the registry and the sqlite online store."""
        return self.home / "feast"

    @property
    def datasets_dir(self) -> Path:
        """Point-in-time training sets."""
        return self.home / "datasets"

    @property
    def models_dir(self) -> Path:
        """Trained SavedModels and indexes, one folder per run."""
        return self.home / "models"

    @property
    def reports_dir(self) -> Path:
        """Validation Data Docs, evaluation and run records."""
        return self.home / "reports"

    @property
    def bentoml_home(self) -> Path:
        """BentoML local model and bento store."""
        return self.home / "bentoml"

    def load_contract(self):  # -> shoprec.contract.Contract (import kept lazy for speed)
        """Import the configured contract object."""
        import importlib

        module, _, attr = self.contract.partition(":")
        if not attr:
            raise ValueError(f"contract must look like 'module:attribute', got {self.contract!r}")
        return getattr(importlib.import_module(module), attr)
