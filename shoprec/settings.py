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
ENV_ONLINE_STORE = "SHOPREC_ONLINE_STORE"
ENV_REDIS = "SHOPREC_REDIS"
DEFAULT_CONTRACT = "shoprec.contract:CONTRACT"
ONLINE_STORES: tuple[str, ...] = ("sqlite", "redis")
"""``sqlite``: one file next to the registry (the embedded default, one machine);
``redis``: a shared server that several serving replicas can read (the scale-out store)."""
DEFAULT_REDIS = "localhost:6379"


def parse_redis(address: str) -> tuple[str, int, dict[str, str]]:
    """Split a Feast-style Redis connection string ``host:port[,key=value...]``.

    Feast's Redis online store takes the same string (``connection_string``); parsing it here
    as well lets ShopRec reject a typo at start-up with a message naming the setting, instead
    of a connection error deep inside the first materialization.

    Returns:
        Host, port and the extra parameters (for example ``{"db": "1"}``).

    Raises:
        ValueError: if the string does not start with ``host:port`` or a parameter is not
            ``key=value``.
    """
    head, *params = [part.strip() for part in address.split(",")]
    host, sep, port = head.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{ENV_REDIS} must look like host:port[,db=N], got {address!r}")
    extra: dict[str, str] = {}
    for param in params:
        key, eq, value = param.partition("=")
        if not eq or not key:
            raise ValueError(f"{ENV_REDIS} parameter {param!r} in {address!r} is not key=value")
        extra[key] = value
    if "db" in extra and not extra["db"].isdigit():
        raise ValueError(f"{ENV_REDIS} db must be a number, got {extra['db']!r} in {address!r}")
    return host, int(port), extra


@dataclass(frozen=True)
class Settings:
    """Filesystem layout of one ShopRec installation (the embedded defaults).

    Attributes:
        home: Root folder for all state (``SHOPREC_HOME``, default ``./var``).
        contract: ``module:attribute`` of the feature contract (``SHOPREC_CONTRACT``).
        seed: Seed for anything random (data generation, shuffles, model init).
        online_store: ``sqlite`` or ``redis`` (``SHOPREC_ONLINE_STORE``), see
            :data:`ONLINE_STORES`.
        redis: Redis connection string ``host:port[,db=N]`` (``SHOPREC_REDIS``), used when
            ``online_store`` is ``redis``.

    Raises:
        ValueError: for an unknown online store kind or a malformed Redis address.
    """

    home: Path
    contract: str = DEFAULT_CONTRACT
    seed: int = 42
    online_store: str = "sqlite"
    redis: str = DEFAULT_REDIS

    def __post_init__(self) -> None:
        if self.online_store not in ONLINE_STORES:
            raise ValueError(f"{ENV_ONLINE_STORE} must be one of {list(ONLINE_STORES)}, "
                             f"got {self.online_store!r}")
        parse_redis(self.redis)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from the ``SHOPREC_*`` variables; call at entry points only."""
        env = os.environ if env is None else env
        home = Path(env.get(ENV_HOME, "var")).expanduser().resolve()
        return cls(home=home, contract=env.get(ENV_CONTRACT, DEFAULT_CONTRACT),
                   online_store=env.get(ENV_ONLINE_STORE, "sqlite").strip().lower() or "sqlite",
                   redis=env.get(ENV_REDIS, DEFAULT_REDIS).strip() or DEFAULT_REDIS)

    def with_home(self, home: Path) -> Settings:
        """Return a copy rooted at ``home`` (used by tests and backfills)."""
        return replace(self, home=Path(home).resolve())

    def env(self) -> dict[str, str]:
        """Environment that lets a child process (feast, bentoml) see these settings."""
        return {ENV_HOME: str(self.home), ENV_CONTRACT: self.contract,
                ENV_ONLINE_STORE: self.online_store, ENV_REDIS: self.redis,
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
