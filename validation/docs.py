"""A GX context whose Data Docs and validation results live under ``settings.reports_dir``.

The context is ephemeral (datasources and suites are rebuilt from the contract on every call,
so nothing can drift from it), with two file-backed parts:

* the validation results store, ``reports/validation/results/``, so the Data Docs index lists
  every batch ever validated, not only the last one;
* the Data Docs site, ``reports/data_docs/index.html``.

Re-validating a batch first removes that batch's earlier results (the GX run name is the
batch id), and the site builder then drops their pages, so a retried task leaves exactly one
set of pages per batch.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pandas as pd

from shoprec.settings import Settings

SITE = "shoprec_local"
DATASOURCE = "shoprec"
INDEX_LIMIT = 500
"""Newest validation results listed on the index page; bounds the index build time."""
KEPT_ROWS = 200
"""Failing rows per expectation kept in the stored GX result (GX itself keeps 200 values)."""


def docs_dir(settings: Settings) -> Path:
    """Root of the Data Docs site; open ``index.html`` in a browser."""
    return settings.reports_dir / "data_docs"


def results_dir(settings: Settings) -> Path:
    """GX validation results (JSON) the Data Docs are rendered from."""
    return settings.reports_dir / "validation" / "results"


def _project_config(settings: Settings) -> Any:
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    defaults = InMemoryStoreBackendDefaults(init_temp_docs_sites=False)
    stores = dict(defaults.stores)
    stores[defaults.validation_results_store_name] = {
        "class_name": "ValidationResultsStore",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                          "base_directory": str(results_dir(settings))},
    }
    page_view = {"module_name": "validation.docs_view", "class_name": "CachedPageView"}
    site = {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                          "base_directory": str(docs_dir(settings))},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder",
                               "validation_results_limit": INDEX_LIMIT,
                               "view": {"module_name": "validation.docs_view",
                                        "class_name": "CachedIndexPageView"}},
        # Pages render with a view that reuses compiled templates (see docs_view); the
        # profiling section is off because the gate never profiles.
        "site_section_builders": {"expectations": {"view": page_view},
                                  "validations": {"view": page_view},
                                  "profiling": "False"},
    }
    return DataContextConfig(store_backend_defaults=defaults, stores=stores,
                             data_docs_sites={SITE: site}, analytics_enabled=False,
                             progress_bars=ProgressBarsConfig(globally=False))


class GxSession:
    """One gate call's GX context: run suites on frames, then render the Data Docs.

    Args:
        settings: Where the reports live.
        batch_id: Used as the GX run name, so every result of the batch can be found (and
            replaced on a retry).
    """

    def __init__(self, settings: Settings, batch_id: str) -> None:
        import great_expectations as gx
        from great_expectations.core.run_identifier import RunIdentifier

        self.settings = settings
        self.batch_id = batch_id
        self.context = gx.get_context(mode="ephemeral", project_config=_project_config(settings))
        self.source = self.context.data_sources.add_pandas(DATASOURCE)
        self.run_id = RunIdentifier(run_name=batch_id,
                                    run_time=dt.datetime.now(dt.UTC))
        self._forget_previous_runs()

    def _forget_previous_runs(self) -> None:
        store = self.context.validation_results_store
        for key in store.list_keys():
            if key.run_id.run_name == self.batch_id:
                store.remove_key(key)

    def runner(self, suite: Any, asset: str, result_format: Any) -> Callable[[pd.DataFrame], Any]:
        """Register ``suite`` on a dataframe asset once; return a function validating a frame.

        Every call stores its result under the same key (suite, batch id, asset), so running
        chunk after chunk keeps one result, which :meth:`replace_result` can overwrite with the
        merged result of the whole batch.

        Args:
            suite: A GX ``ExpectationSuite`` (not yet added to any context).
            asset: Name of the dataframe asset (it appears in the Data Docs page name).
            result_format: GX result format (``COMPLETE`` with indices for row suites).
        """
        import great_expectations as gx

        batch_def = self.source.add_dataframe_asset(asset).add_batch_definition_whole_dataframe(
            "whole")
        suite = self.context.suites.add(suite)
        definition = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{suite.name}_{asset}", data=batch_def, suite=suite))

        def run(frame: pd.DataFrame) -> Any:
            return definition.run(batch_parameters={"dataframe": frame},
                                  result_format=result_format, run_id=self.run_id)

        return run

    def run(self, suite: Any, frame: pd.DataFrame, asset: str, result_format: Any) -> Any:
        """Validate ``frame`` against ``suite`` and store the result for the Data Docs.

        ``frame`` must have a RangeIndex: the row positions in the result are index labels.

        Returns:
            The ``ExpectationSuiteValidationResult``.
        """
        return self.runner(suite, asset, result_format)(frame)

    def replace_result(self, suite_name: str, result: Any) -> None:
        """Store ``result`` in place of this batch's stored result of suite ``suite_name``."""
        store = self.context.validation_results_store
        for key in self._batch_keys():
            if key.expectation_suite_identifier.name == suite_name:
                store.set(key, result)

    def _batch_keys(self) -> list[Any]:
        return [key for key in self.context.validation_results_store.list_keys()
                if key.run_id.run_name == self.batch_id]

    def _slim_stored_results(self, keys: list[Any]) -> None:
        """Cut the stored per-row lists to :data:`KEPT_ROWS` entries.

        ``COMPLETE`` results list every failing row; the gate has already turned them into
        the quarantine file (the full record), and the Data Docs only show a sample. Keeping
        the stored JSON small keeps the index build fast, since it reads every listed result.
        """
        store = self.context.validation_results_store
        for key in keys:
            result = store.get(key)
            for res in result.results:
                for name in ("unexpected_index_list", "unexpected_list"):
                    if len((res.result or {}).get(name) or []) > KEPT_ROWS:
                        res.result[name] = res.result[name][:KEPT_ROWS]
            store.set(key, result)

    def build_docs(self) -> tuple[Path, dict[str, Path]]:
        """Render this batch's pages and the index; return the index and the page per suite.

        Only this batch's results and the suites are rendered (older batches' pages stay as
        they are), so the cost does not grow with the number of batches validated.
        """
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
        )

        keys = self._batch_keys()
        self._slim_stored_results(keys)
        suites = [ExpectationSuiteIdentifier(name=k.expectation_suite_identifier.name)
                  for k in keys]
        urls = self.context.build_data_docs(site_names=[SITE], resource_identifiers=keys + suites)
        pages: dict[str, Path] = {}
        for key in keys:
            found = self.context.get_docs_sites_urls(resource_identifier=key, site_name=SITE)
            if found and found[0].get("site_url"):
                pages[key.expectation_suite_identifier.name] = _url_path(found[0]["site_url"])
        return _url_path(urls[SITE]), pages


def _url_path(url: str) -> Path:
    """``file:///a/b%20c.html`` → ``Path('/a/b c.html')``."""
    return Path(unquote(urlparse(url).path))
