"""The object store: one global resourceVersion counter, an event history for watches, finalizers,
graceful deletion and owner-reference garbage collection. What one kind does differently lives in its
strategy (`strategies.py`); the store calls the strategy's hooks and names no kind.

Everything runs on the server's event loop, so no locking is needed. Stored objects are never mutated
in place: every write stores a fresh dict, so readers may serialise what they get without copying.
"""

from __future__ import annotations

import asyncio
import copy
import json
import secrets
import string
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Network
from typing import Any

from . import strategies, validation
from .errors import ApiError, already_exists, conflict, not_found
from .resources import Registry, ResourceType

DEFAULT_HISTORY = 10_000
# etcd's default request limit (--max-request-bytes), which bounds every stored object.
MAX_OBJECT_BYTES = 1_572_864
ObjectKey = tuple[str, str, str]  # storage key, namespace ("" when cluster-scoped), name


def now_rfc3339(offset_s: float = 0.0) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=offset_s)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


GRACE_EXPIRY_MARGIN_S = 5.0


@dataclass
class WatchEvent:
    """One change, as stored in the history and fanned out to watchers."""

    resource_version: int
    storage_key: str
    namespace: str
    type: str
    obj: dict[str, Any]
    previous: dict[str, Any] | None = None
    _line: bytes | None = field(default=None, repr=False)

    def line(self) -> bytes:
        """The newline-terminated JSON the watch stream carries, serialised once for all watchers."""
        if self._line is None:
            self._line = json.dumps({"type": self.type, "object": self.obj}).encode() + b"\n"
        return self._line


@dataclass(eq=False)
class Watcher:
    """A subscription: events of one resource (optionally one namespace) passing a selector filter."""

    storage_key: str
    namespace: str | None
    matches: Callable[[Mapping[str, Any]], bool] | None
    queue: asyncio.Queue[WatchEvent] = field(default_factory=asyncio.Queue)

    def selects(self, event: WatchEvent) -> WatchEvent | None:
        """The event as this watcher sees it: an object leaving its selector is DELETED for it."""
        if event.storage_key != self.storage_key:
            return None
        if self.namespace is not None and event.namespace != self.namespace:
            return None
        if self.matches is None:
            return event
        now_matches = self.matches(event.obj)
        was_matching = event.previous is not None and self.matches(event.previous)
        if event.type == "MODIFIED":
            if now_matches and not was_matching:
                return WatchEvent(event.resource_version, event.storage_key, event.namespace, "ADDED", event.obj)
            if was_matching and not now_matches:
                return WatchEvent(event.resource_version, event.storage_key, event.namespace, "DELETED", event.obj)
        return event if now_matches else None


@dataclass
class DeleteOptions:
    grace_period_seconds: int | None = None
    propagation_policy: str = "Background"
    precondition_uid: str | None = None
    precondition_resource_version: str | None = None
    dry_run: bool = False

    @classmethod
    def from_body(cls, body: Mapping[str, Any] | None, query: Mapping[str, str]) -> DeleteOptions:
        body = body or {}
        grace = body.get("gracePeriodSeconds", query.get("gracePeriodSeconds"))
        preconditions = body.get("preconditions") or {}
        policy = body.get("propagationPolicy") or query.get("propagationPolicy") or "Background"
        if body.get("orphanDependents") is True or query.get("orphanDependents") == "true":
            policy = "Orphan"
        dry_run = "All" in (body.get("dryRun") or ()) or query.get("dryRun") == "All"
        return cls(None if grace is None else int(grace), policy,
                   preconditions.get("uid"), preconditions.get("resourceVersion"), dry_run)


def _generation_source(resource: ResourceType, obj: Mapping[str, Any]) -> dict[str, Any]:
    """What counts as the spec: everything but metadata (and status, where status is a subresource)."""
    excluded = ("metadata", "apiVersion", "kind") + (("status",) if resource.has_status else ())
    return {k: v for k, v in obj.items() if k not in excluded}


def _check_size(obj: Mapping[str, Any]) -> None:
    if len(json.dumps(obj)) > MAX_OBJECT_BYTES:
        raise ApiError(413, "Request entity too large: etcdserver: request is too large")


def _random_suffix() -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5))


class Store:
    """In-memory objects of every served resource type, with Kubernetes write semantics."""

    def __init__(self, registry: Registry, history: int = DEFAULT_HISTORY,
                 service_network: IPv4Network = strategies.DEFAULT_SERVICE_NETWORK) -> None:
        self.registry = registry
        self.resource_version = 0
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        self._history: deque[WatchEvent] = deque(maxlen=history)
        self._compacted_version = 0
        self._watchers: set[Watcher] = set()
        self._uids: dict[str, ObjectKey] = {}
        self._dependents: dict[str, set[ObjectKey]] = {}
        self.cluster_ips = strategies.ClusterIPAllocator(service_network)
        self._graceful_timers: dict[ObjectKey, asyncio.TimerHandle] = {}

    # -- reads -------------------------------------------------------------------------------------

    def get(self, resource: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        obj = self._objects.get(resource.storage_key, {}).get((self._ns(resource, namespace), name))
        if obj is None:
            raise not_found(resource.plural, name, resource.group)
        return obj

    def list_objects(self, resource: ResourceType, namespace: str | None,
             matches: Callable[[Mapping[str, Any]], bool] | None = None) -> list[dict[str, Any]]:
        """Objects sorted by namespace and name, as etcd returns them."""
        bucket = self._objects.get(resource.storage_key, {})
        keys = sorted(bucket) if namespace is None else sorted(k for k in bucket if k[0] == namespace)
        items = (bucket[key] for key in keys)
        return [obj for obj in items if matches is None or matches(obj)]

    def namespaces(self) -> Iterator[str]:
        return (name for _, name in self._objects.get("/namespaces", {}))

    def holds_objects_in(self, namespace: str) -> bool:
        """Whether any object of any type is stored in the namespace."""
        return any(key[0] == namespace for bucket in self._objects.values() for key in bucket)

    # -- watches -----------------------------------------------------------------------------------

    def subscribe(self, watcher: Watcher, since: int | None) -> list[WatchEvent]:
        """Register a watcher; return the events after `since` it missed (410 Gone if compacted).

        With `since` None the watcher gets a synthetic ADDED for every current object instead, as a
        watch without a resourceVersion does on a real server.
        """
        if since is None:
            backlog = [WatchEvent(self.resource_version, watcher.storage_key, obj["metadata"].get("namespace", ""),
                                  "ADDED", obj)
                       for obj in self._objects.get(watcher.storage_key, {}).values()]
            backlog = [event for event in backlog if watcher.selects(event)]
        else:
            if since < self._compacted_version:
                raise ApiError(410, f"too old resource version: {since} ({self._compacted_version + 1})",
                               reason="Expired")
            backlog = []
            for event in reversed(self._history):
                if event.resource_version <= since:
                    break
                seen = watcher.selects(event)
                if seen is not None:
                    backlog.append(seen)
            backlog.reverse()
        self._watchers.add(watcher)
        return backlog

    def unsubscribe(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    def _emit(self, resource: ResourceType, kind: str, obj: dict[str, Any], previous: dict[str, Any] | None) -> None:
        event = WatchEvent(int(obj["metadata"]["resourceVersion"]), resource.storage_key,
                           obj["metadata"].get("namespace", ""), kind, obj, previous)
        if len(self._history) == self._history.maxlen:
            self._compacted_version = self._history[0].resource_version
        self._history.append(event)
        for watcher in self._watchers:
            seen = watcher.selects(event)
            if seen is not None:
                watcher.queue.put_nowait(seen)

    # -- writes ------------------------------------------------------------------------------------

    def _ns(self, resource: ResourceType, namespace: str) -> str:
        return namespace if resource.namespaced else ""

    def _next_version(self) -> str:
        self.resource_version += 1
        return str(self.resource_version)

    def _put(self, resource: ResourceType, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        key = (resource.storage_key, meta.get("namespace", ""), meta["name"])
        self._objects.setdefault(resource.storage_key, {})[(key[1], key[2])] = obj
        self._uids[meta["uid"]] = key
        for ref in meta.get("ownerReferences") or ():
            self._dependents.setdefault(ref["uid"], set()).add(key)

    def create(self, resource: ResourceType, namespace: str, body: dict[str, Any],
               dry_run: bool = False) -> dict[str, Any]:
        """Store a new object: uid, timestamps, resourceVersion, generation, type defaults."""
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if resource.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise ApiError(400, "the namespace of the provided object does not match the namespace sent on "
                                    "the request")
            meta["namespace"] = namespace
            owner = self._objects.get("/namespaces", {}).get(("", namespace))
            if owner is None:
                raise not_found("namespaces", namespace)
            if owner["metadata"].get("deletionTimestamp"):
                raise ApiError(403, f"{resource.qualified} \"{meta.get('name') or meta.get('generateName', '')}\" is "
                                    f"forbidden: unable to create new content in namespace {namespace} because it is "
                                    "being terminated", reason="Forbidden")
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + _random_suffix()
        if not meta.get("name"):
            raise ApiError(422, "name or generateName is required", kind=resource.kind)
        obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
        if (meta.get("namespace", ""), meta["name"]) in self._objects.get(resource.storage_key, {}):
            raise already_exists(resource.plural, meta["name"], resource.group)
        validation.validate_name(obj, resource)
        strategy = strategies.strategy_for(resource)
        strategy.validate_create(obj)
        for transient in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"):
            meta.pop(transient, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta["generation"] = 1
        strategy.prepare_create(obj, strategies.CreateContext(self.cluster_ips, meta["creationTimestamp"], dry_run))
        if dry_run:
            return obj
        _check_size(obj)
        meta["resourceVersion"] = self._next_version()
        self._put(resource, obj)
        strategy.after_create(obj, self)
        self._emit(resource, "ADDED", obj, None)
        return obj

    def update(self, resource: ResourceType, namespace: str, name: str, body: dict[str, Any],
               subresource: str = "", dry_run: bool = False) -> dict[str, Any]:
        """Replace an object (PUT, or the result of a PATCH), honouring the status subresource rules.

        `subresource` is "" for the main resource (status kept as it was), "status" (only status taken)
        or "binding" (the scheduler's binding: spec.nodeName and the PodScheduled condition together).
        """
        old = self.get(resource, namespace, name)
        new = copy.deepcopy(body)
        meta = new.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise ApiError(400, f'the name of the object ({meta.get("name")}) does not match the name on the URL '
                                f"({name})")
        old_meta = old["metadata"]
        requested_version = meta.get("resourceVersion")
        if requested_version and requested_version != old_meta["resourceVersion"]:
            raise conflict(resource.plural, name, resource.group)
        if meta.get("uid") and meta["uid"] != old_meta["uid"]:
            raise conflict(resource.plural, name, resource.group)
        if subresource == "status":
            merged = dict(old)
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            new = merged
            meta = dict(old_meta)
        elif resource.has_status and subresource != "binding":
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        strategy = strategies.strategy_for(resource)
        context = strategies.UpdateContext(now_rfc3339(), subresource)
        strategy.validate_update(old, new, context)
        strategy.prepare_update(old, new, context)
        for immutable in ("uid", "creationTimestamp", "namespace", "deletionTimestamp", "deletionGracePeriodSeconds",
                          "generation"):
            if immutable in old_meta:
                meta[immutable] = old_meta[immutable]
            else:
                meta.pop(immutable, None)
        meta["name"] = name
        new["metadata"] = meta
        new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or ()) - set(old_meta.get("finalizers") or ())
            if added:
                raise ApiError(422, f"metadata.finalizers: Forbidden: no new finalizers can be added if the object "
                                    f"is being deleted, found new finalizers {sorted(added)}")
        if _generation_source(resource, new) != _generation_source(resource, old):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        if new == old or dry_run:  # dryRun=All: the result of the write, nothing stored or emitted
            return new if dry_run else old
        _check_size(new)
        meta["resourceVersion"] = self._next_version()
        self._forget_owner_refs(resource, old)
        self._put(resource, new)
        strategy.after_update(new, self)
        self._emit(resource, "MODIFIED", new, old)
        if self._removable(resource, new):
            return self._remove(resource, new)
        return new

    def delete(self, resource: ResourceType, namespace: str, name: str,
               options: DeleteOptions | None = None) -> dict[str, Any]:
        """Delete now, or mark for deletion (finalizers pending, or a pod's graceful termination)."""
        options = options or DeleteOptions()
        obj = self.get(resource, namespace, name)
        meta = obj["metadata"]
        if options.precondition_uid and options.precondition_uid != meta["uid"]:
            raise conflict(resource.plural, name, resource.group)
        if options.precondition_resource_version and options.precondition_resource_version != meta["resourceVersion"]:
            raise conflict(resource.plural, name, resource.group)
        if options.propagation_policy == "Orphan":
            self._orphan_dependents(meta["uid"])
        elif options.propagation_policy == "Foreground":
            self._collect_dependents(meta["uid"], exclude_owner=True)
        strategy = strategies.strategy_for(resource)
        grace = strategy.graceful_deletion_seconds(obj, options.grace_period_seconds)
        if meta.get("deletionTimestamp"):
            current_grace = int(meta.get("deletionGracePeriodSeconds") or 0)
            grace = min(grace, current_grace)
            if grace == current_grace:
                return obj
        elif strategy.removes_at_once(obj, grace):
            return self._remove(resource, obj)
        marked = dict(obj)
        marked["metadata"] = dict(meta, deletionTimestamp=meta.get("deletionTimestamp") or now_rfc3339(grace),
                                  deletionGracePeriodSeconds=grace, resourceVersion=self._next_version())
        strategy.prepare_delete(marked)
        self._put(resource, marked)
        self._emit(resource, "MODIFIED", marked, obj)
        strategy.after_delete_marked(marked, self)
        removed = self._remove_if_ready(resource, meta.get("namespace", ""), name)
        if removed is not None:
            return removed
        if grace > 0:
            self._schedule_grace_expiry(resource, marked, grace)
        return marked

    def delete_at_once(self, resource: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        """Delete without a grace period, as garbage collection does (finalizers still hold the object)."""
        return self.delete(resource, namespace, name, DeleteOptions(grace_period_seconds=0))

    def remove_all(self, resource: ResourceType) -> None:
        """Remove every object of a type no longer served, finalizers or not (its CRD has gone)."""
        bucket = self._objects.get(resource.storage_key, {})
        for key, obj in list(bucket.items()):
            if key in bucket:  # a cascade from an earlier removal may have taken it already
                self._remove(resource, obj)

    # -- deletion internals ------------------------------------------------------------------------

    def _removable(self, resource: ResourceType, obj: dict[str, Any]) -> bool:
        return bool(obj["metadata"].get("deletionTimestamp")) \
            and strategies.strategy_for(resource).ready_to_remove(obj, self)

    def _remove_if_ready(self, resource: ResourceType, namespace: str, name: str) -> dict[str, Any] | None:
        """Remove a marked object whose strategy lets it go now; None if it stays (or is gone)."""
        obj = self._objects.get(resource.storage_key, {}).get((self._ns(resource, namespace), name))
        if obj is None or not self._removable(resource, obj):
            return None
        return self._remove(resource, obj)

    def _schedule_grace_expiry(self, resource: ResourceType, obj: dict[str, Any], grace: int) -> None:
        """When the grace period ends, finish the deletion the kubelet should have finished."""
        key = (resource.storage_key, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        uid = obj["metadata"]["uid"]

        def expire() -> None:
            self._graceful_timers.pop(key, None)
            current = self._objects.get(key[0], {}).get((key[1], key[2]))
            if current is not None and current["metadata"]["uid"] == uid:
                self.delete_at_once(resource, key[1], key[2])

        previous = self._graceful_timers.pop(key, None)
        if previous is not None:
            previous.cancel()
        # A real apiserver waits for the kubelet; this stand-in gives it a margin past the grace period
        # so the kubelet's SIGKILL and final container status land before the pod disappears.
        self._graceful_timers[key] = asyncio.get_running_loop().call_later(grace + GRACE_EXPIRY_MARGIN_S, expire)

    def _forget_owner_refs(self, resource: ResourceType, obj: Mapping[str, Any]) -> None:
        meta = obj["metadata"]
        key = (resource.storage_key, meta.get("namespace", ""), meta["name"])
        for ref in meta.get("ownerReferences") or ():
            dependents = self._dependents.get(ref["uid"])
            if dependents is not None:
                dependents.discard(key)
                if not dependents:
                    del self._dependents[ref["uid"]]

    def _remove(self, resource: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        namespace, name = meta.get("namespace", ""), meta["name"]
        del self._objects[resource.storage_key][(namespace, name)]
        self._uids.pop(meta["uid"], None)
        self._forget_owner_refs(resource, obj)
        timer = self._graceful_timers.pop((resource.storage_key, namespace, name), None)
        if timer is not None:
            timer.cancel()
        removed = dict(obj)
        removed["metadata"] = dict(meta, resourceVersion=self._next_version())
        self._emit(resource, "DELETED", removed, obj)
        strategies.strategy_for(resource).after_delete(obj, self)
        self._collect_dependents(meta["uid"])
        if namespace:
            self._recheck_namespace(namespace)
        return removed

    def _recheck_namespace(self, namespace: str) -> None:
        """A namespace being deleted waits for its content: each removal from it may let it go."""
        namespaces = self.registry.get("", "v1", "namespaces")
        if namespaces is not None:
            self._remove_if_ready(namespaces, "", namespace)

    def _resource_of(self, storage_key: str) -> ResourceType | None:
        group, _, plural = storage_key.partition("/")
        return next((r for r in self.registry if r.group == group and r.plural == plural), None)

    def _collect_dependents(self, owner_uid: str, exclude_owner: bool = False) -> None:
        """Background cascade: delete dependents none of whose owners exist any more."""
        for storage_key, namespace, name in sorted(self._dependents.get(owner_uid, ())):
            resource = self._resource_of(storage_key)
            dependent = self._objects.get(storage_key, {}).get((namespace, name))
            if resource is None or dependent is None:
                continue
            owners = [ref["uid"] for ref in dependent["metadata"].get("ownerReferences") or ()]
            alive = [uid for uid in owners if uid in self._uids and not (exclude_owner and uid == owner_uid)]
            if not alive:
                self.delete(resource, namespace, name)

    def _orphan_dependents(self, owner_uid: str) -> None:
        for storage_key, namespace, name in sorted(self._dependents.get(owner_uid, ())):
            resource = self._resource_of(storage_key)
            dependent = self._objects.get(storage_key, {}).get((namespace, name))
            if resource is None or dependent is None:
                continue
            updated = copy.deepcopy(dependent)
            updated["metadata"]["ownerReferences"] = [
                ref for ref in dependent["metadata"].get("ownerReferences") or () if ref["uid"] != owner_uid]
            self.update(resource, namespace, name, updated)
