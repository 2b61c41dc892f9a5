"""The adapter's read cache of one kind: projections of the objects its watch delivers.

Filled and kept current by :class:`trtserve_operator.kube.watch.Informer` (list, then
watch); read by the handlers' view. Plain Python with no HTTP client, so the layers above
may import it. Each entry is a *projection* (a small dict with only the fields the
operator reads, see :mod:`trtserve_operator.kube.projections`), never a whole object.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

Key = tuple[str, str]
"""(namespace, name) of an object."""


class ObjectCache:
    """Projections keyed by (namespace, name), optionally grouped by one label's value
    (pods by their TRTModel: ``(namespace, instance) -> {name: projection}``)."""

    def __init__(self, kind: str, *, group_label: str | None = None) -> None:
        self.kind = kind
        self.group_label = group_label
        self._objects: dict[Key, dict[str, Any]] = {}
        self._group_of: dict[Key, Key] = {}
        self._groups: dict[Key, dict[str, dict[str, Any]]] = {}
        self.ready = False
        """True once the first listing is in: before that the cache is incomplete."""

    def __len__(self) -> int:
        return len(self._objects)

    def __iter__(self) -> Iterator[Key]:
        return iter(list(self._objects))

    def get(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self._objects.get((namespace, name))

    def group(self, namespace: str, value: str) -> list[Mapping[str, Any]]:
        """The projections whose ``group_label`` is ``value`` in ``namespace``."""
        members = self._groups.get((namespace, value))
        return list(members.values()) if members else []

    def group_key(self, namespace: str, name: str) -> Key | None:
        """(namespace, label value) the object is grouped under, if cached and grouped."""
        return self._group_of.get((namespace, name))

    # --- written by the informer only -----------------------------------------------------

    def put(
        self, namespace: str, name: str, projection: dict[str, Any], group: str | None = None
    ) -> dict[str, Any] | None:
        """Store ``projection``; returns the one it replaces."""
        key = (namespace, name)
        old = self._objects.get(key)
        self._objects[key] = projection
        if self.group_label is not None:
            self._ungroup(key)
            if group is not None:
                group_key = (namespace, group)
                self._group_of[key] = group_key
                self._groups.setdefault(group_key, {})[name] = projection
        return old

    def remove(self, namespace: str, name: str) -> dict[str, Any] | None:
        """Forget an object; returns its last projection."""
        key = (namespace, name)
        self._ungroup(key)
        return self._objects.pop(key, None)

    def _ungroup(self, key: Key) -> None:
        group_key = self._group_of.pop(key, None)
        if group_key is None:
            return
        members = self._groups.get(group_key)
        if members is not None:
            members.pop(key[1], None)
            if not members:
                del self._groups[group_key]
