"""Data Docs page views that compile GX's Jinja templates once per process, not once per page.

GX builds a fresh Jinja ``Environment`` for every view it instantiates, and it instantiates
new views on every ``build_data_docs`` call, so each gate run recompiled the same ~50
templates (about half of the run's time). Jinja's bytecode cache is the supported way to reuse
compiled templates across environments: it is keyed by template name and source checksum, and
every environment here has the same settings, so a cached template is exactly what a fresh
compile would produce.

GX loads these classes by name from the site config (``validation.docs``); nothing else
imports this module, so importing ``great_expectations`` at its top costs nothing at DAG
parse time.
"""

from __future__ import annotations

from typing import Any

from great_expectations.render.view import DefaultJinjaIndexPageView, DefaultJinjaPageView
from jinja2 import BytecodeCache
from jinja2.bccache import Bucket


class _MemoryBytecodeCache(BytecodeCache):
    """Compiled templates kept in this process, keyed like Jinja's file cache."""

    def __init__(self) -> None:
        self._store: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        """Fill ``bucket`` from memory if this template (name + checksum) was compiled."""
        data = self._store.get(bucket.key)
        if data is not None:
            bucket.bytecode_from_string(data)

    def dump_bytecode(self, bucket: Bucket) -> None:
        """Remember a freshly compiled template."""
        self._store[bucket.key] = bucket.bytecode_to_string()


_CACHE = _MemoryBytecodeCache()


class CachedPageView(DefaultJinjaPageView):
    """GX's page view (validation and suite pages) with the shared bytecode cache."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.env.bytecode_cache = _CACHE


class CachedIndexPageView(DefaultJinjaIndexPageView):
    """GX's index page view with the shared bytecode cache."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.env.bytecode_cache = _CACHE
