"""HTTP routes: the REST verbs on every served resource, watches, pod logs, discovery and OpenAPI."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from . import (
    auth,
    core_schemas,
    core_validation,
    discovery,
    fieldmanager,
    openapi,
    podlogs,
    portforward,
    protobuf,
    streams,
    tables,
    validation,
)
from .errors import ApiError, status_object
from .patch import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from .resources import Registry, ResourceType
from .selectors import object_filter
from .store import DeleteOptions, Store, Watcher, WatchEvent, now_rfc3339

_TERMINAL_POD_PHASES = ("Succeeded", "Failed")
# The real server's limit on a request body (--max-request-bytes' default); etcd's 1.5 MiB limit on a
# stored object is checked by the store.
MAX_REQUEST_BYTES = 3 * 1024 * 1024
USER = web.RequestKey("user", auth.UserInfo)
_RESOURCE_URL = re.compile(r"^/(api/[^/]+|apis/[^/]+/[^/]+)/.+")
_LOG_POLL_S = 0.1


@dataclass(frozen=True)
class Target:
    """What a resource URL names: the type, the namespace, and optionally an object and subresource."""

    resource: ResourceType
    namespace: str
    name: str = ""
    subresource: str = ""


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=json.dumps(body).encode(), status=status, content_type="application/json",
                        headers=headers)


def _error(error: ApiError) -> web.Response:
    return _json(error.status(), error.code)


def _wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


class Routes:
    """The aiohttp application of one emulated API server."""

    def __init__(self, store: Store, logs_dir: Path | None, bookmark_interval_s: float) -> None:
        self.store = store
        self.registry: Registry = store.registry
        self.logs_dir = logs_dir
        self.bookmark_interval_s = bookmark_interval_s
        self._openapi_cache: tuple[int, dict[str, bytes]] | None = None
        self._stopping = asyncio.Event()
        self.tokens = auth.Tokens()
        #: the kubelet that runs `pods/exec` commands (a sandbox sets it; a bare emulator has none)
        self.node_agent: streams.NodeAgent | None = None
        self.authorizer = auth.Authorizer(self._rbac_objects)

    def _rbac_objects(self, plural: str, namespace: str | None) -> list[dict[str, Any]]:
        resource = self.registry.get(auth.RBAC_GROUP, "v1", plural)
        return [] if resource is None else self.store.list_objects(resource, namespace)

    def application(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[self._errors, self._authenticate])
        app.router.add_get("/version", self._version)
        app.router.add_get("/healthz", self._ok)
        app.router.add_get("/livez", self._ok)
        app.router.add_get("/readyz", self._ok)
        app.router.add_get("/openapi/v2", self._openapi_v2)
        app.router.add_get("/openapi/v3", self._openapi_v3_index)
        app.router.add_get("/openapi/v3/{path:.+}", self._openapi_v3_document)
        app.router.add_route("*", "/api", self._core_versions)
        app.router.add_route("*", "/apis", self._groups)
        app.router.add_route("*", "/api/{version}{tail:(/.*)?}", self._dispatch_core)
        app.router.add_route("*", "/apis/{group}", self._group)
        app.router.add_route("*", "/apis/{group}/{version}{tail:(/.*)?}", self._dispatch_group)
        return app

    def stop_streams(self) -> None:
        """Ask open watches and log follows to finish, so the server can shut down promptly."""
        self._stopping.set()

    @web.middleware
    async def _errors(self, request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as error:
            return _error(error)
        except json.JSONDecodeError as error:
            return _error(ApiError(400, f"the body of the request could not be decoded: {error}"))
        except web.HTTPRequestEntityTooLarge:
            return _error(ApiError(413, f"Request entity too large: limit is {MAX_REQUEST_BYTES}"))

    @web.middleware
    async def _authenticate(self, request: web.Request,
                            handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        """Who the request is from (see `auth`); non-resource URLs are authorized here, resources in _dispatch."""
        credentials = request.headers.get("Authorization", "")
        caller = auth.ADMIN
        if credentials:
            scheme, _, token = credentials.partition(" ")
            found = self.tokens.user(token.strip()) if scheme.lower() == "bearer" else None
            if found is None:
                raise auth.unauthorized()
            caller = found
        groups = request.headers.getall("Impersonate-Group", [])
        request[USER] = auth.impersonated(caller, request.headers, list(groups), self.authorizer)
        if not _RESOURCE_URL.match(request.path):
            self.authorizer.require(auth.Attributes(request[USER], "get", path=request.path))
        return await handler(request)

    # -- discovery ---------------------------------------------------------------------------------

    async def _ok(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _version(self, request: web.Request) -> web.Response:
        return _json(discovery.version_info())

    async def _core_versions(self, request: web.Request) -> web.Response:
        return _json(discovery.core_versions(request.host))

    async def _groups(self, request: web.Request) -> web.Response:
        return _json(discovery.group_list(self.registry))

    async def _group(self, request: web.Request) -> web.Response:
        versions = self.registry.groups().get(request.match_info["group"])
        if not versions:
            raise ApiError(404, "the server could not find the requested resource")
        return _json(dict(discovery.group_document(request.match_info["group"], versions), kind="APIGroup",
                          apiVersion="v1"))

    def _openapi_documents(self) -> dict[str, bytes]:
        if self._openapi_cache is None or self._openapi_cache[0] != self.registry.generation:
            self._openapi_cache = (self.registry.generation, openapi.all_documents(self.registry))
        return self._openapi_cache[1]

    async def _openapi_v3_index(self, request: web.Request) -> web.Response:
        return _json(openapi.discovery_document(self.registry, self._openapi_documents()))

    async def _openapi_v3_document(self, request: web.Request) -> web.Response:
        document = self._openapi_documents().get(request.match_info["path"])
        if document is None:
            raise ApiError(404, "the server could not find the requested resource")
        return web.Response(body=document, content_type="application/json")

    async def _openapi_v2(self, request: web.Request) -> web.Response:
        accept = request.headers.get("Accept", "application/json")
        if "json" not in accept and "*/*" not in accept:
            raise ApiError(406, "only application/json is served for /openapi/v2")
        return _json(openapi.swagger_v2(self.registry))

    # -- resource URLs -----------------------------------------------------------------------------

    async def _dispatch_core(self, request: web.Request) -> web.StreamResponse:
        return await self._dispatch(request, "", request.match_info["version"])

    async def _dispatch_group(self, request: web.Request) -> web.StreamResponse:
        return await self._dispatch(request, request.match_info["group"], request.match_info["version"])

    def _target(self, group: str, version: str, segments: list[str]) -> Target | None:
        def lookup(plural: str) -> ResourceType:
            resource = self.registry.get(group, version, plural)
            if resource is None:
                raise ApiError(404, "the server could not find the requested resource")
            return resource

        if len(segments) >= 3 and segments[0] == "namespaces":
            resource = lookup(segments[2])
            if not resource.namespaced:
                raise ApiError(404, "the server could not find the requested resource")
            rest = segments[3:]
            return Target(resource, segments[1], *rest[:2]) if len(rest) <= 2 else None
        if not segments or len(segments) > 3:
            return None
        resource = lookup(segments[0])
        return Target(resource, "", *segments[1:3])

    async def _dispatch(self, request: web.Request, group: str, version: str) -> web.StreamResponse:
        segments = [s for s in request.match_info["tail"].split("/") if s]
        if not segments:
            documents = discovery.resource_list(self.registry, group, version)
            if documents is None:
                raise ApiError(404, "the server could not find the requested resource")
            return _json(documents)
        target = self._target(group, version, segments)
        if target is None:
            raise ApiError(404, "the server could not find the requested resource")
        method = request.method
        verb = auth.request_verb(method, bool(target.name), request.query.get("watch") in ("1", "true"),
                                 target.subresource)
        self.authorizer.require(auth.Attributes(request[USER], verb, group, target.resource.plural,
                                                target.subresource, target.namespace, target.name))
        if target.resource.review:
            if method == "POST" and not target.name:
                return await self._review(request, target)
            raise ApiError(405, f"{method} is not supported on this URL")
        if target.subresource == "token" and method == "POST":
            return await self._token(request, target)
        if not target.name:
            if method == "GET":
                if request.query.get("watch") in ("1", "true"):
                    return await self._watch(request, target)
                return self._list(request, target)
            if method == "POST":
                return await self._create(request, target)
            if method == "DELETE":
                return await self._delete_collection(request, target)
        elif not target.subresource or target.subresource == "status":
            if target.subresource == "status" and not target.resource.has_status:
                raise ApiError(404, "the server could not find the requested resource")
            if method == "GET":
                return self._get(request, target)
            if method == "PUT":
                return await self._replace(request, target)
            if method == "PATCH":
                return await self._patch(request, target)
            if method == "DELETE" and not target.subresource:
                return await self._delete(request, target)
        elif target.resource.plural == "pods" and not target.resource.group:
            if target.subresource == "log" and method == "GET":
                return await self._log(request, target)
            if target.subresource == "exec" and method in ("GET", "POST"):
                return await self._exec(request, target)
            if target.subresource == "attach" and method in ("GET", "POST"):
                return await self._attach(request, target)
            if target.subresource == "portforward" and method in ("GET", "POST"):
                return await self._port_forward(request, target)
            if target.subresource == "binding" and method == "POST":
                return await self._bind(request, target)
            if target.subresource == "eviction" and method == "POST":
                return await self._evict(request, target)
        raise ApiError(405, f"{method} is not supported on this URL")

    # -- verbs -------------------------------------------------------------------------------------

    def _versioned(self, target: Target, obj: dict[str, Any]) -> dict[str, Any]:
        """The object as the requested version presents it (all served versions share one schema)."""
        if obj.get("apiVersion") == target.resource.api_version:
            return obj
        return dict(obj, apiVersion=target.resource.api_version)

    def _list(self, request: web.Request, target: Target) -> web.Response:
        query = request.query
        matches = object_filter(query.get("labelSelector", ""), query.get("fieldSelector", ""))
        namespace = target.namespace if target.resource.namespaced and target.namespace else None
        items = self.store.list_objects(target.resource, namespace, matches)
        resource_version = str(self.store.resource_version)
        if token := query.get("continue"):
            start = json.loads(base64.urlsafe_b64decode(token.encode()))["start"]
            items = [obj for obj in items
                     if [obj["metadata"].get("namespace", ""), obj["metadata"]["name"]] > start]
        continue_token = ""
        limit = int(query.get("limit") or 0)
        if 0 < limit < len(items):
            items = items[:limit]
            last = items[-1]["metadata"]
            continue_token = base64.urlsafe_b64encode(json.dumps(
                {"start": [last.get("namespace", ""), last["name"]]}).encode()).decode()
        items = [self._versioned(target, obj) for obj in items]
        if _wants_table(request):
            return _json(tables.table(target.resource, items, resource_version,
                                      query.get("includeObject", "Metadata"), continue_token))
        metadata: dict[str, Any] = {"resourceVersion": resource_version}
        if continue_token:
            metadata["continue"] = continue_token
        return _json({"kind": f"{target.resource.kind}List", "apiVersion": target.resource.api_version,
                      "metadata": metadata, "items": items})

    def _get(self, request: web.Request, target: Target) -> web.Response:
        obj = self._versioned(target, self.store.get(target.resource, target.namespace, target.name))
        if _wants_table(request):
            return _json(tables.table(target.resource, [obj], obj["metadata"]["resourceVersion"],
                                      request.query.get("includeObject", "Metadata")))
        return _json(obj)

    async def _body(self, request: web.Request) -> Any:
        """The request body as JSON values, whichever of JSON, YAML (apply) and protobuf it came in."""
        raw = await request.read()
        if not raw:
            return None
        if request.content_type == protobuf.MEDIA_TYPE:
            return protobuf.decode(raw)
        try:
            if request.content_type in (APPLY_PATCH, "application/yaml"):
                return yaml.safe_load(raw.decode())
            return json.loads(raw)
        except (UnicodeDecodeError, yaml.YAMLError) as error:
            raise ApiError(400, f"the body of the request could not be decoded: {error}") from error

    @staticmethod
    def _manager(request: web.Request) -> str:
        return fieldmanager.manager_name(request.query.get("fieldManager"), request.headers.get("User-Agent", ""))

    def _admit(self, request: web.Request, target: Target, obj: dict[str, Any],
               old: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
        """Prune unknown fields (an error under fieldValidation=Strict), apply defaults, validate."""
        pruned = validation.prune(obj, target.resource)
        directive = request.query.get("fieldValidation", "Warn")
        warnings: list[str] = []
        if pruned.unknown_fields:
            if directive == "Strict":
                raise validation.strict_decoding_error(target.resource, pruned.unknown_fields)
            if directive == "Warn":
                warnings = [f'299 - "unknown field \\"{path}\\""' for path in pruned.unknown_fields]
        validation.validate(pruned.obj, target.resource, old)
        core_validation.validate(pruned.obj, target.resource)
        return pruned.obj, warnings

    @staticmethod
    def _warning_headers(warnings: list[str]) -> dict[str, str] | None:
        return {"Warning": ", ".join(warnings)} if warnings else None

    async def _create(self, request: web.Request, target: Target) -> web.Response:
        body = await self._body(request)
        if not isinstance(body, dict):
            raise ApiError(400, "the body of the request must be an object")
        body.setdefault("metadata", {})
        if target.resource.namespaced:
            body["metadata"].setdefault("namespace", target.namespace)
        body["apiVersion"], body["kind"] = target.resource.api_version, target.resource.kind
        obj, warnings = self._admit(request, target, body)
        fieldmanager.record_update(target.resource, None, obj, self._manager(request), now_rfc3339())
        dry_run = request.query.get("dryRun") == "All"
        created = self.store.create(target.resource, target.namespace, obj, dry_run=dry_run)
        return _json(self._versioned(target, created), 201, self._warning_headers(warnings))

    async def _write(self, request: web.Request, target: Target, new: dict[str, Any],
                     applied_by: str = "") -> web.Response:
        """PUT, PATCH and apply: admit the new object, record who changed what, store it."""
        new["apiVersion"], new["kind"] = target.resource.api_version, target.resource.kind
        old = self.store.get(target.resource, target.namespace, target.name)
        obj, warnings = self._admit(request, target, new, old)
        if not applied_by and not target.subresource:
            fieldmanager.record_update(target.resource, old, obj, self._manager(request), now_rfc3339())
        updated = self.store.update(target.resource, target.namespace, target.name, obj, target.subresource,
                                    dry_run=request.query.get("dryRun") == "All")
        return _json(self._versioned(target, updated), 200, self._warning_headers(warnings))

    async def _replace(self, request: web.Request, target: Target) -> web.Response:
        body = await self._body(request)
        if not isinstance(body, dict):
            raise ApiError(400, "the body of the request must be an object")
        return await self._write(request, target, body)

    async def _apply(self, request: web.Request, target: Target, applied: Any) -> web.Response:
        """Server-side apply: create the object if it does not exist, else merge as its managers allow."""
        if not isinstance(applied, dict):
            raise ApiError(400, "the body of an apply patch must be an object")
        if not request.query.get("fieldManager"):
            raise ApiError(422, "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required "
                                "for apply patch")
        manager, force = request.query["fieldManager"], request.query.get("force") == "true"
        applied.setdefault("metadata", {}).setdefault("name", target.name)
        if applied["metadata"]["name"] != target.name:
            raise ApiError(400, f'the name of the object ({applied["metadata"]["name"]}) does not match the name on '
                                f"the URL ({target.name})")
        if target.resource.namespaced:
            applied["metadata"].setdefault("namespace", target.namespace)
        live = None if not self._exists(target) else self.store.get(target.resource, target.namespace, target.name)
        merged = fieldmanager.apply(target.resource, live, applied, manager, force, now_rfc3339())
        if live is None:
            merged["apiVersion"], merged["kind"] = target.resource.api_version, target.resource.kind
            obj, warnings = self._admit(request, target, merged)
            created = self.store.create(target.resource, target.namespace, obj,
                                        dry_run=request.query.get("dryRun") == "All")
            return _json(self._versioned(target, created), 201, self._warning_headers(warnings))
        return await self._write(request, target, merged, applied_by=manager)

    async def _patch(self, request: web.Request, target: Target) -> web.Response:
        content_type = request.content_type
        patch = await self._body(request)
        if content_type == APPLY_PATCH:
            return await self._apply(request, target, patch)
        current = self.store.get(target.resource, target.namespace, target.name)
        base = json.loads(json.dumps(current))
        if content_type == MERGE_PATCH:
            patched = merge_patch(base, patch)
        elif content_type == JSON_PATCH:
            patched = json_patch(base, patch)
        elif content_type == STRATEGIC_MERGE_PATCH and not target.resource.is_custom:
            schema = core_schemas.kind_schema(target.resource.group, target.resource.version, target.resource.kind)
            patched = strategic_merge_patch(base, patch, schema or {})
        else:
            accepted = f"{JSON_PATCH}, {MERGE_PATCH}"
            if not target.resource.is_custom:
                accepted += f", {STRATEGIC_MERGE_PATCH}"
            raise ApiError(415, f"the body of the request was in an unknown format - accepted media types include: "
                                f"{accepted}, {APPLY_PATCH}")
        if not isinstance(patched, dict):
            raise ApiError(422, "the patch did not produce an object")
        return await self._write(request, target, patched)

    async def _delete(self, request: web.Request, target: Target) -> web.Response:
        options = DeleteOptions.from_body(await self._body(request), request.query)
        if options.dry_run:  # what would be deleted; nothing changes
            return _json(self._versioned(target, self.store.get(target.resource, target.namespace, target.name)))
        obj = self.store.delete(target.resource, target.namespace, target.name, options)
        # 202 while finalizers or a graceful termination keep the object around, as the real server answers.
        return _json(self._versioned(target, obj), 202 if self._exists(target) else 200)

    def _exists(self, target: Target) -> bool:
        try:
            self.store.get(target.resource, target.namespace, target.name)
        except ApiError:
            return False
        return True

    async def _delete_collection(self, request: web.Request, target: Target) -> web.Response:
        options = DeleteOptions.from_body(await self._body(request), request.query)
        matches = object_filter(request.query.get("labelSelector", ""), request.query.get("fieldSelector", ""))
        namespace = target.namespace if target.resource.namespaced and target.namespace else None
        deleted = []
        for obj in self.store.list_objects(target.resource, namespace, matches):
            meta = obj["metadata"]
            if options.dry_run:
                deleted.append(obj)
                continue
            with contextlib.suppress(ApiError):
                deleted.append(self.store.delete(target.resource, meta.get("namespace", ""), meta["name"], options))
        return _json({"kind": f"{target.resource.kind}List", "apiVersion": target.resource.api_version,
                      "metadata": {"resourceVersion": str(self.store.resource_version)}, "items": deleted})

    # -- exec ----------------------------------------------------------------------------------------

    async def _exec(self, request: web.Request, target: Target) -> web.StreamResponse:
        pod = self.store.get(target.resource, target.namespace, target.name)
        containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
        container = request.query.get("container") or containers[0]
        if container not in containers:
            raise ApiError(400, f"container {container} is not valid for pod {target.name}")
        if self.node_agent is None:
            raise ApiError(400, "this API server has no kubelet to run commands in pods")
        try:
            command = request.query.getall("command", [])
            spec = self.node_agent.exec_spec(target.namespace, target.name, container, command)
        except streams.ContainerNotRunning as error:
            raise ApiError(400, str(error)) from error
        return await streams.serve_exec(request, spec)

    async def _attach(self, request: web.Request, target: Target) -> web.StreamResponse:
        pod = self.store.get(target.resource, target.namespace, target.name)
        path = self._log_file(pod, request.query)
        uid = pod["metadata"]["uid"]
        stdin_pipe = None
        if request.query.get("stdin") in ("true", "1") and self.node_agent is not None:
            try:
                stdin_pipe = self.node_agent.attach_stdin(target.namespace, target.name,
                                                          self._container_of(pod, request.query))
            except streams.ContainerNotRunning as error:
                raise ApiError(400, str(error)) from error
        return await streams.serve_attach(request, path, lambda: self._pod_running(target, uid), self._stopping,
                                          _LOG_POLL_S, stdin_pipe)

    async def _port_forward(self, request: web.Request, target: Target) -> web.StreamResponse:
        pod = self.store.get(target.resource, target.namespace, target.name)
        status = pod.get("status") or {}
        if status.get("phase") != "Running" or not status.get("podIP"):
            raise ApiError(400, f"pod {target.name} is not running")
        return await portforward.serve_port_forward(request, status["podIP"])

    # -- reviews and tokens ------------------------------------------------------------------------

    async def _review(self, request: web.Request, target: Target) -> web.Response:
        """Access and identity reviews: answered at once, never stored."""
        review = await self._body(request) or {}
        spec = review.get("spec") or {}
        status = auth.review_status(self.authorizer, target.resource.kind, spec, request[USER], target.namespace)
        return _json({"kind": target.resource.kind, "apiVersion": target.resource.api_version,
                      "metadata": {"creationTimestamp": None}, "spec": spec, "status": status}, 201)

    async def _token(self, request: web.Request, target: Target) -> web.Response:
        """TokenRequest: a bearer token for the ServiceAccount, valid while this server runs."""
        account = self.store.get(target.resource, target.namespace, target.name)
        spec = dict((await self._body(request) or {}).get("spec") or {})
        spec.setdefault("expirationSeconds", 3600)
        token = self.tokens.issue(target.namespace, target.name, account["metadata"]["uid"])
        return _json({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                      "metadata": {"name": target.name, "namespace": target.namespace, "creationTimestamp": None},
                      "spec": spec, "status": {"token": token,
                                               "expirationTimestamp": now_rfc3339(float(spec["expirationSeconds"]))}},
                     201)

    # -- pod subresources --------------------------------------------------------------------------

    async def _bind(self, request: web.Request, target: Target) -> web.Response:
        binding = await self._body(request) or {}
        node = (binding.get("target") or {}).get("name")
        if not node:
            raise ApiError(422, "Binding.target.name: Required value")
        pod = self.store.get(target.resource, target.namespace, target.name)
        if (pod.get("spec") or {}).get("nodeName"):
            raise ApiError(409, f'pod {target.name} is already assigned to node "{pod["spec"]["nodeName"]}"')
        bound = json.loads(json.dumps(pod))
        bound["spec"]["nodeName"] = node
        conditions = [c for c in (bound.get("status") or {}).get("conditions") or [] if c.get("type") != "PodScheduled"]
        conditions.append({"type": "PodScheduled", "status": "True", "lastTransitionTime": now_rfc3339()})
        bound.setdefault("status", {})["conditions"] = conditions
        self.store.update(target.resource, target.namespace, target.name, bound, "binding")
        return _json(status_object("Success", 201), 201)

    async def _evict(self, request: web.Request, target: Target) -> web.Response:
        eviction = await self._body(request) or {}
        options = DeleteOptions.from_body(eviction.get("deleteOptions"), {})
        self.store.delete(target.resource, target.namespace, target.name, options)
        return _json(status_object("Success", 201), 201)

    @staticmethod
    def _container_of(pod: dict[str, Any], query: Any) -> str:
        """The container a log or attach request names (or the pod's only one)."""
        containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
        container: str = query.get("container") or (containers[0] if len(containers) == 1 else "")
        name = pod["metadata"]["name"]
        if not container:
            raise ApiError(400, f"a container name must be specified for pod {name}, choose one of: {containers}")
        if container not in containers:
            raise ApiError(400, f"container {container} is not valid for pod {name}")
        return container

    def _log_file(self, pod: dict[str, Any], query: Any) -> Path:
        container = self._container_of(pod, query)
        name = pod["metadata"]["name"]
        if self.logs_dir is None:
            raise ApiError(400, "this API server has no logs directory")
        suffix = ".previous.log" if query.get("previous") == "true" else ".log"
        path: Path = self.logs_dir / pod["metadata"]["namespace"] / name / f"{container}{suffix}"
        if not path.exists():
            if suffix == ".previous.log":
                raise ApiError(400, f'previous terminated container "{container}" in pod "{name}" not found')
            raise ApiError(400, f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating')
        return path

    async def _log(self, request: web.Request, target: Target) -> web.StreamResponse:
        pod = self.store.get(target.resource, target.namespace, target.name)
        path = self._log_file(pod, request.query)
        query = podlogs.LogQuery.from_query(request.query, datetime.now(UTC))
        follow = request.query.get("follow") == "true"
        log = podlogs.ContainerLog(path)
        content = podlogs.render(log.read_lines(complete_only=follow), query)
        if not follow:
            return web.Response(body=content, content_type="text/plain")
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        await response.write(content)
        later = replace(query, tail_lines=None, limit_bytes=None)
        uid = pod["metadata"]["uid"]
        while not self._stopping.is_set():
            finished = not self._pod_running(target, uid)
            if path.exists():
                if path.stat().st_size < log.bytes_read:  # a restarted container's new log
                    log = podlogs.ContainerLog(path)
                if chunk := podlogs.render(log.read_lines(complete_only=not finished), later):
                    await response.write(chunk)
            if finished:
                break
            await asyncio.sleep(_LOG_POLL_S)
        return response

    def _pod_running(self, target: Target, uid: str) -> bool:
        try:
            pod = self.store.get(target.resource, target.namespace, target.name)
        except ApiError:
            return False
        return pod["metadata"]["uid"] == uid and (pod.get("status") or {}).get("phase") not in _TERMINAL_POD_PHASES

    # -- watch -------------------------------------------------------------------------------------

    def _bookmark(self, target: Target, initial_events_end: bool = False) -> bytes:
        metadata: dict[str, Any] = {"resourceVersion": str(self.store.resource_version)}
        if initial_events_end:
            metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
        event = {"type": "BOOKMARK", "object": {"kind": target.resource.kind,
                                                "apiVersion": target.resource.api_version, "metadata": metadata}}
        return json.dumps(event).encode() + b"\n"

    def _event_line(self, target: Target, event: WatchEvent, table_rows: str | None = None) -> bytes:
        """One watch line; `table_rows` (the includeObject policy) asks for the object as a one-row Table,
        as `kubectl get -w` does to keep its columns."""
        if table_rows is not None:
            obj = self._versioned(target, event.obj)
            rows = tables.table(target.resource, [obj], obj["metadata"]["resourceVersion"], table_rows)
            return json.dumps({"type": event.type, "object": rows}).encode() + b"\n"
        if event.obj.get("apiVersion") == target.resource.api_version:
            return event.line()
        return json.dumps({"type": event.type, "object": self._versioned(target, event.obj)}).encode() + b"\n"

    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        query = request.query
        matches = object_filter(query.get("labelSelector", ""), query.get("fieldSelector", ""))
        namespace = target.namespace if target.resource.namespaced and target.namespace else None
        requested = query.get("resourceVersion", "")
        initial_events = query.get("sendInitialEvents") == "true"
        since = None if requested in ("", "0") or initial_events else int(requested)
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
        watcher = Watcher(target.resource.storage_key, namespace, matches)
        table_rows = query.get("includeObject", "Metadata") if _wants_table(request) else None
        response = web.StreamResponse(headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        try:
            backlog = self.store.subscribe(watcher, since)
        except ApiError as error:
            await response.prepare(request)
            await response.write(json.dumps({"type": "ERROR", "object": error.status()}).encode() + b"\n")
            return response
        try:
            await response.prepare(request)
            await response.write(b"".join(self._event_line(target, event, table_rows) for event in backlog))
            if initial_events and bookmarks:
                await response.write(self._bookmark(target, initial_events_end=True))
            await self._stream(response, target, watcher, timeout, bookmarks, table_rows)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.store.unsubscribe(watcher)
        return response

    async def _stream(self, response: web.StreamResponse, target: Target, watcher: Watcher, timeout: float | None,
                      bookmarks: bool, table_rows: str | None) -> None:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        stopping: asyncio.Future[Any] = asyncio.ensure_future(self._stopping.wait())
        getter: asyncio.Future[Any] | None = None
        try:
            while True:
                wait_s = self.bookmark_interval_s if bookmarks else None
                if deadline is not None:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        return
                    wait_s = remaining if wait_s is None else min(wait_s, remaining)
                getter = getter or asyncio.ensure_future(watcher.queue.get())
                done, _ = await asyncio.wait({getter, stopping}, timeout=wait_s,
                                             return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    if stopping in done:
                        return
                    if bookmarks:
                        await response.write(self._bookmark(target))
                    continue
                lines = [self._event_line(target, getter.result(), table_rows)]
                getter = None
                while not watcher.queue.empty():
                    lines.append(self._event_line(target, watcher.queue.get_nowait(), table_rows))
                await response.write(b"".join(lines))
        finally:
            stopping.cancel()
            if getter is not None:
                getter.cancel()
