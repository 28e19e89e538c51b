"""Feast CLI entry point: the contract's FeatureViews and OnDemandFeatureViews.

One FeatureView per batch view, one OnDemandFeatureView per request view.

``feast -c feature_repo -f $SHOPREC_HOME/feast/feature_store.yaml plan|apply`` imports this file
and registers every Feast object found among its module attributes. The objects come from
:func:`feature_repo.definitions.repo_objects`, i.e. from the contract, so no name is typed here.
Being an entry point, it reads the settings from the environment (set ``SHOPREC_HOME``).
"""

from feature_repo.definitions import repo_objects
from shoprec.settings import Settings

_objects = repo_objects(Settings.from_env())
globals().update(_objects.views)
globals().update(_objects.on_demand_views)
