"""Feast CLI entry point: one FeatureView per contract feature view.

``feast -c feature_repo -f $SHOPREC_HOME/feast/feature_store.yaml plan|apply`` imports this file
and registers every Feast object found among its module attributes. The objects come from
:func:`feature_repo.definitions.repo_objects`, i.e. from the contract, so no name is typed here.
Being an entry point, it reads the settings from the environment (set ``SHOPREC_HOME``).
"""

from feature_repo.definitions import repo_objects
from shoprec.settings import Settings

globals().update(repo_objects(Settings.from_env()).views)
