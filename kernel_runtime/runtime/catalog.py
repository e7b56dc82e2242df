"""The catalog: the live versions of every product, in memory, kept in step with the store.

Specs are parsed once, when a version is first loaded, so the invoke path never
reads the store. The catalog is read from the store at start, re-read every
``catalog_sync`` seconds (replicas sharing a store publish too), reloaded a product at a time
when another replica announces a change (:meth:`Catalog.reload`), and changed by publish and
unpublish. It also shapes a product for the API (:meth:`Catalog.product_json`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from .. import jsontext
from ..errors import CorruptRecord, InvalidNotebook, NbmeshError, NotFound
from ..model.bundle import FileEntry, Submission, bundle_problems, essence, file_problem
from ..model.product import ProductSpec, check_name, load_spec, parse_ref, read_notebook
from ..model.records import Product, StoredVersion
from ..store.repository import Repository
from ..triggers.lineage import downstream_of, upstream_of
from ..triggers.rules import check_triggers, loop_problems

log = logging.getLogger("nbmesh.service")


def _unchanged(current: StoredVersion, notebook: dict[str, Any], manifest: dict[str, FileEntry]) -> bool:
    """A republish that changes nothing: the same files, and the same notebook but for what running it changes."""
    return current.files == manifest and essence(current.notebook) == essence(notebook)


def load_product(nb: Any, name: str | None = None) -> ProductSpec:
    """A notebook validated as a product, its triggers included; InvalidNotebook lists every problem."""
    return load_spec(nb, name, check_triggers=check_triggers)


@dataclass
class CatalogEntry:
    """The live versions of one product; specs are parsed once and kept."""

    versions: list[int]
    stored: dict[int, StoredVersion] = field(default_factory=dict)
    specs: dict[int, ProductSpec] = field(default_factory=dict)

    @property
    def latest(self) -> int:
        return self.versions[-1]


class Catalog:
    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.entries: dict[str, CatalogEntry] = {}
        self._lock = asyncio.Lock()
        self._unreadable: set[tuple[str, int]] = set()  # stored versions that failed to load: never retried

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    # keeping in step with the store ------------------------------------------------
    async def load(self) -> None:
        """Read the catalog from the store; a product whose stored record is broken is skipped, not fatal."""
        names = set(await asyncio.to_thread(self.repo.product_names))
        for name in names | set(self.entries):
            try:
                await self._refresh(name)
            except NbmeshError as exc:
                log.error("product %s cannot be loaded from the store: %s %s", name, exc.message, exc.details)

    async def sync(self, interval: float) -> None:
        """Pick up what other replicas sharing the store published or unpublished, every ``interval`` seconds."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.load()
            except NbmeshError as exc:
                log.warning("catalog sync skipped: %s", exc.message)

    async def reload(self, name: str) -> None:
        """Read one product again from the store: another replica published or unpublished it."""
        await self._refresh(check_name(name))

    async def _refresh(self, name: str) -> CatalogEntry | None:
        # One refresh at a time: a listing read before a racing publish must not land after it.
        async with self._lock:
            versions = [v for v in await asyncio.to_thread(self.repo.versions, name) if (name, v) not in self._unreadable]
            entry = self.entries.get(name) or CatalogEntry(versions=versions)
            # Loaded before it is listed: a version that cannot be read never reaches the catalog,
            # and the newest one that can serves instead (a broken or planted file hides nothing).
            while versions:
                try:
                    await self._load_version(name, entry, versions[-1])
                    break
                except (CorruptRecord, InvalidNotebook) as exc:
                    log.error("version %s of %s cannot be loaded and is left out: %s %s", versions[-1], name, exc.message, exc.details)
                    self._unreadable.add((name, versions.pop()))
            if not versions:
                self.entries.pop(name, None)
                return None
            entry.versions = versions
            self.entries[name] = entry
            return entry

    async def _load_version(self, name: str, entry: CatalogEntry, version: int) -> ProductSpec:
        if version not in entry.specs:
            stored = await asyncio.to_thread(self.repo.get_version, name, version)
            if stored is None:
                raise NotFound(f"Product {name} has no version {version}.")
            entry.stored[version] = stored
            entry.specs[version] = load_product(read_notebook(json.dumps(stored.notebook)), name)
        return entry.specs[version]

    # publishing ----------------------------------------------------------------------
    async def publish(self, name: str, sent: Submission, authorize: Callable[[str], None] | None = None) -> tuple[ProductSpec, int, bool]:
        """Store what was sent as a new version (and say whether one was made: not when nothing changed).

        ``authorize`` is called with the owner the notebook names, before anything is checked or
        stored; the problems of the request's parts are listed with the notebook's own.
        """
        check_name(name)
        body, files, problems = sent.notebook, sent.files, sent.problems
        if body is None:
            raise InvalidNotebook("The publish has no notebook.", [*problems, file_problem("No part is named 'notebook'.")])
        nb = read_notebook(body)
        meta = nb.get("metadata", {}).get("nbmesh", {})
        owner = meta.get("owner", "") if isinstance(meta, dict) else ""
        if authorize is not None and isinstance(owner, str):
            authorize(owner)
        loops = loop_problems(name, meta.get("triggers", []) if isinstance(meta, dict) else [], self.subscriptions())
        flagged = {p.get("file") for p in problems}
        extra = [*problems, *bundle_problems(meta, [f.path for f in files if f.path not in flagged]), *loops]
        try:
            load_product(nb, name)  # raises InvalidNotebook listing every problem; nothing is stored then
        except InvalidNotebook as exc:
            exc.details.extend(extra)
            raise
        if extra:
            raise InvalidNotebook("The notebook is not a valid product.", extra)
        notebook = jsontext.loads(body, "The notebook")
        current = await self._refresh(name)
        manifest = {f.path: FileEntry(sha256=f.sha256, size=f.size) for f in files}
        if current is not None and _unchanged(current.stored[current.latest], notebook, manifest):
            return current.specs[current.latest], current.latest, False
        await asyncio.to_thread(self.repo.put_files, list(files))
        stored = await asyncio.to_thread(self.repo.add_version, name, notebook, manifest)
        entry = await self._refresh(name)
        assert entry is not None
        return await self._load_version(name, entry, stored.version), stored.version, True

    async def stored_version(self, name: str, version: int) -> StoredVersion:
        """The stored record of a live version (its notebook and files manifest)."""
        await self.resolve(f"{name}@{version}")
        return self.entries[name].stored[version]

    async def unpublish(self, name: str) -> None:
        check_name(name)
        entry = self.entries.get(name)
        if entry is None:
            raise NotFound(f"No product named {name!r} is published.")
        async with self._lock:
            await asyncio.to_thread(self.repo.unpublish, name, entry.latest)
            self.entries.pop(name, None)

    # reading ---------------------------------------------------------------------------
    async def resolve(self, ref: str) -> tuple[ProductSpec, int]:
        """The spec and version ``name`` or ``name@version`` names; NotFound if it is not live."""
        name, version = parse_ref(ref)
        entry = self.entries.get(name)
        if entry is None:
            raise NotFound(f"No product named {name!r} is published.")
        version = version or entry.latest
        if version not in entry.versions:
            raise NotFound(f"Product {name!r} has no version {version}; versions: {entry.versions}.")
        return await self._load_version(name, entry, version), version

    def product_json(self, name: str, version: int | None = None) -> Product:
        entry = self.entries[name]
        version = version or entry.latest
        spec, stored = entry.specs[version], entry.stored[version]
        return Product(
            name=name,
            version=version,
            versions=list(entry.versions),
            title=spec.title,
            description=spec.description,
            owner=spec.owner,
            parameters=spec.parameters_json(),
            triggers=list(spec.triggers),
            timeout=spec.timeout,
            cache_ttl=spec.cache_ttl,
            output_schema=spec.output_schema,
            published_at=stored.published_at,
            invoke_url=f"/api/products/{name}/invoke",
            upstream=upstream_of(spec.triggers),
            downstream=downstream_of(name, self.subscriptions()),
        )

    def products(self, visible: Callable[[str], bool] | None = None) -> list[Product]:
        """The catalog, or the part of it ``visible`` (a product name -> bool) lets through."""
        return [self.product_json(name) for name in sorted(self.entries) if visible is None or visible(name)]

    def owner_of(self, name: str) -> str | None:
        """The owner of a published product's newest version, from memory; None if it is not published."""
        entry = self.entries.get(name)
        spec = entry.specs.get(entry.latest) if entry is not None else None
        return None if spec is None else spec.owner

    async def product(self, ref: str) -> Product:
        spec, version = await self.resolve(ref)
        return self.product_json(spec.name, version)

    async def product_notebook(self, ref: str) -> dict[str, Any]:
        spec, version = await self.resolve(ref)
        return self.entries[spec.name].stored[version].notebook

    def latest_spec(self, name: str) -> ProductSpec:
        entry = self.entries[name]
        return entry.specs[entry.latest]

    def newest_first(self, count: int) -> list[tuple[ProductSpec, int]]:
        """The ``count`` most recently published products' newest versions, newest first (what to prewarm)."""
        names = sorted(self.entries, key=lambda n: self.entries[n].stored[self.entries[n].latest].published_at)
        return [(self.latest_spec(name), self.entries[name].latest) for name in reversed(names[-count:])]

    def state(self) -> tuple[tuple[str, int], ...]:
        """Which version of each product is the newest: what documents built from the catalog depend on."""
        return tuple(sorted((name, entry.latest) for name, entry in self.entries.items()))

    # what triggers see -------------------------------------------------------------------
    def newest_versions(self) -> list[tuple[str, int, tuple[dict[str, Any], ...]]]:
        """(name, version, triggers) of each product's newest version, the one triggers run.

        A version whose spec is still loading (mid-publish) is left out until it is loaded.
        """
        return [
            (name, entry.latest, entry.specs[entry.latest].triggers)
            for name, entry in sorted(self.entries.items())
            if entry.latest in entry.specs
        ]

    def subscriptions(self) -> dict[str, tuple[dict[str, Any], ...]]:
        """Each product's newest trigger list, by name: the lineage graph's input."""
        return {name: trigs for name, _, trigs in self.newest_versions()}
