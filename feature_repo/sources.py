"""Feast CLI entry point: one FileSource per contract feature view (the daily snapshot Parquet).

``feast -c feature_repo -f $SHOPREC_HOME/feast/feature_store.yaml plan|apply`` imports this file
and registers every Feast object found among its module attributes. The objects come from
:func:`feature_repo.definitions.repo_objects`, i.e. from the contract, so no name is typed here.
Being an entry point, it reads the settings from the environment (set ``SHOPREC_HOME``).
"""

from feature_repo.definitions import repo_objects
from shoprec.settings import Settings

_objects = repo_objects(Settings.from_env())
globals().update(_objects.sources)
globals().update({p.name: p for p in _objects.push_sources.values()})
