"""Feast PushSources for the views that events keep fresh between batch runs.

A batch view only changes when the features DAG materializes a new snapshot day. A view fed by
a ``PushSource`` (whose ``batch_source`` is the same snapshot ``FileSource``) is still
materialized and joined point-in-time exactly as before, but ``feature_repo.push`` can also
write freshly recomputed rows into it with ``FeatureStore.push``: a push lands in the *same*
online rows the batch path writes, so serving needs no second lookup.

Which views get one is derived from the contract: a view is pushable when one of its features
has an event-based recipe (a recipe with ``events``), because only those can change when an
event arrives; catalogue attributes do not.

Feast is imported inside functions: ``feature_repo.definitions`` may import this module while
Airflow parses DAGs.
"""

from __future__ import annotations

from typing import Any

from shoprec.contract import Contract


def push_source_name(view: str) -> str:
    """Registry name of the PushSource that feeds ``view``."""
    return f"{view}_push"


def pushable_views(contract: Contract, entity: str | None = None) -> list[str]:
    """Views with an event-based feature, optionally only those of ``entity``, in contract order.

    Raises:
        KeyError: if ``entity`` is not an entity of the contract.
    """
    if entity is not None:
        contract.entity(entity)
    return [v.name for v in contract.views
            if (entity is None or v.entity == entity)
            and any(hasattr(f.recipe, "events") for f in contract.view_features(v.name))]


def push_source(contract: Contract, view: str, batch_source: Any) -> Any | None:
    """The PushSource for ``view`` backed by its snapshot source, or ``None`` if not pushable.

    Args:
        contract: Decides whether ``view`` is pushable.
        view: Feature view name.
        batch_source: The view's snapshot ``FileSource``: materialization and historical
            retrieval keep reading it through the PushSource.
    """
    if view not in pushable_views(contract):
        return None
    from feast import PushSource

    return PushSource(name=push_source_name(view), batch_source=batch_source,
                      description=f"Fresh rows of {view} recomputed from new events by "
                                  "feature_repo.push (online only).",
                      tags={"view": view, "mode": "online"})


def push_sources(contract: Contract, sources: dict[str, Any]) -> dict[str, Any]:
    """PushSources of every pushable view, keyed by view name (``sources`` keyed the same)."""
    out = {}
    for view, batch in sources.items():
        pushed = push_source(contract, view, batch)
        if pushed is not None:
            out[view] = pushed
    return out
