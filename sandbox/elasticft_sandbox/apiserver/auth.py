"""Who is asking and may they: ServiceAccount tokens, impersonation, and RBAC as the API server does it.

- Authentication: a bearer token the server issued (TokenRequest on `serviceaccounts/NAME/token`, which
  the kubelet asks for to mount into pods) is that ServiceAccount; a request with no credentials is the
  cluster admin (group `system:masters`), as whoever holds kind's admin certificate; any other token is
  401. `Impersonate-User`/`Impersonate-Group` headers switch to another user if the caller may
  `impersonate` it (`kubectl --as`).
- Authorization (RBAC): `system:masters` may do anything; everyone authenticated gets the bootstrap
  discovery and self-review rules (`system:discovery`, `system:basic-user`); everything else comes from
  ClusterRoleBindings and, per namespace, RoleBindings to Roles or ClusterRoles. A rule matches on verb,
  API group, resource (`pods/log` for a subresource, `*/scale`, `*`), resourceNames, or a non-resource URL.
- Denials are 403 with the real server's message: `pods "x" is forbidden: User "U" cannot get resource
  "pods/log" in API group "" in the namespace "ns"`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import ApiError

Obj = dict[str, Any]
RBAC_GROUP = "rbac.authorization.k8s.io"
MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"

# Bootstrap policy every cluster has for authenticated users (system:discovery, system:basic-user,
# system:public-info-viewer).
_BOOTSTRAP_RULES: tuple[Obj, ...] = (
    {"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*",
                                           "/version", "/version/", "/healthz", "/livez", "/readyz"]},
    {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
     "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]},
    {"verbs": ["create"], "apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"]},
)


@dataclass(frozen=True)
class UserInfo:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""

    def as_status(self) -> Obj:
        info: Obj = {"username": self.name, "groups": list(self.groups)}
        if self.uid:
            info["uid"] = self.uid
        return info


ADMIN = UserInfo("kubernetes-admin", (MASTERS, AUTHENTICATED))


def service_account_user(namespace: str, name: str, uid: str = "") -> UserInfo:
    return UserInfo(f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}",
                    ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED), uid)


def user_named(name: str, groups: Iterable[str] = (), uid: str = "") -> UserInfo:
    """The user a SubjectAccessReview or an impersonation names (ServiceAccounts get their groups)."""
    if name.startswith(SERVICE_ACCOUNT_PREFIX):
        namespace, _, account = name[len(SERVICE_ACCOUNT_PREFIX):].partition(":")
        base = service_account_user(namespace, account, uid)
        return UserInfo(base.name, tuple(dict.fromkeys([*base.groups, *groups])), uid)
    return UserInfo(name, tuple(dict.fromkeys([*groups, AUTHENTICATED])), uid)


@dataclass(frozen=True)
class Attributes:
    """One request as the authorizer sees it (`resource` empty for a non-resource URL `path`)."""

    user: UserInfo
    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""

    @property
    def is_resource(self) -> bool:
        return bool(self.resource)

    @classmethod
    def from_review(cls, user: UserInfo, spec: Mapping[str, Any]) -> Attributes:
        """The attributes a (Self)SubjectAccessReview asks about."""
        resource = spec.get("resourceAttributes")
        if resource:
            return cls(user, str(resource.get("verb", "")), str(resource.get("group", "")),
                       str(resource.get("resource", "")), str(resource.get("subresource", "")),
                       str(resource.get("namespace", "")), str(resource.get("name", "")))
        other = spec.get("nonResourceAttributes") or {}
        return cls(user, str(other.get("verb", "")), path=str(other.get("path", "")))


@dataclass
class Tokens:
    """Bearer tokens this server issued, each standing for one ServiceAccount."""

    _users: dict[str, UserInfo] = field(default_factory=dict)

    def issue(self, namespace: str, account: str, uid: str) -> str:
        token = secrets.token_urlsafe(32)
        self._users[token] = service_account_user(namespace, account, uid)
        return token

    def user(self, token: str) -> UserInfo | None:
        return self._users.get(token)


def _matches(values: Iterable[str], wanted: str) -> bool:
    return any(value in ("*", wanted) for value in values)


def _resource_matches(resources: Iterable[str], resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for entry in resources:
        if entry in ("*", combined):
            return True
        if subresource and entry == f"*/{subresource}":
            return True
    return False


def rule_allows(rule: Mapping[str, Any], attributes: Attributes) -> bool:
    """Whether one PolicyRule covers the request."""
    if not _matches(rule.get("verbs") or (), attributes.verb):
        return False
    if not attributes.is_resource:
        return any(url == attributes.path or (url.endswith("*") and attributes.path.startswith(url[:-1]))
                   for url in rule.get("nonResourceURLs") or ())
    if not _matches(rule.get("apiGroups") or (), attributes.group):
        return False
    if not _resource_matches(rule.get("resources") or (), attributes.resource, attributes.subresource):
        return False
    names = rule.get("resourceNames") or ()
    return not names or attributes.name in names


def _subject_matches(subject: Mapping[str, Any], user: UserInfo, binding_namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name", "")
    if kind == "User":
        return bool(name == user.name)
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user.name == f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"
    return False


class Authorizer:
    """RBAC over the Roles, ClusterRoles and bindings of a store (read at each decision)."""

    def __init__(self, read: Callable[[str, str | None], list[Obj]]) -> None:
        #: read(plural, namespace | None) -> objects of that rbac.authorization.k8s.io/v1 kind
        self._read = read

    def _rules(self, attributes: Attributes) -> Iterator[Mapping[str, Any]]:
        yield from _BOOTSTRAP_RULES
        user = attributes.user
        for binding in self._read("clusterrolebindings", None):
            if any(_subject_matches(s, user, "") for s in binding.get("subjects") or ()):
                yield from self._role_rules(binding["roleRef"], "")
        if attributes.namespace:
            for binding in self._read("rolebindings", attributes.namespace):
                if any(_subject_matches(s, user, attributes.namespace) for s in binding.get("subjects") or ()):
                    yield from self._role_rules(binding["roleRef"], attributes.namespace)

    def _role_rules(self, role_ref: Mapping[str, Any], namespace: str) -> list[Mapping[str, Any]]:
        plural = "clusterroles" if role_ref.get("kind") == "ClusterRole" else "roles"
        scope = None if plural == "clusterroles" else namespace
        role = next((r for r in self._read(plural, scope) if r["metadata"]["name"] == role_ref.get("name")), None)
        return list((role or {}).get("rules") or ())

    def rules_of(self, user: UserInfo, namespace: str) -> Obj:
        """The status of a SelfSubjectRulesReview: every rule that applies to `user` in `namespace`."""
        if MASTERS in user.groups:
            return {"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}], "incomplete": False}
        rules = list(self._rules(Attributes(user, "", namespace=namespace)))
        keys = ("verbs", "apiGroups", "resources", "resourceNames")
        return {"resourceRules": [{k: list(r[k]) for k in keys if r.get(k)} for r in rules if r.get("resources")],
                "nonResourceRules": [{"verbs": list(r["verbs"]), "nonResourceURLs": list(r["nonResourceURLs"])}
                                     for r in rules if r.get("nonResourceURLs")],
                "incomplete": False}

    def allowed(self, attributes: Attributes) -> bool:
        if MASTERS in attributes.user.groups:
            return True
        return any(rule_allows(rule, attributes) for rule in self._rules(attributes))

    def require(self, attributes: Attributes) -> None:
        """Raise the API server's 403 unless RBAC allows the request."""
        if not self.allowed(attributes):
            raise forbidden(attributes)


def forbidden(attributes: Attributes) -> ApiError:
    user = f'User "{attributes.user.name}"'
    if not attributes.is_resource:
        return ApiError(403, f'forbidden: {user} cannot {attributes.verb} path "{attributes.path}"')
    qualified = f"{attributes.resource}.{attributes.group}" if attributes.group else attributes.resource
    subject = f'{qualified} "{attributes.name}"' if attributes.name else qualified
    resource = f"{attributes.resource}/{attributes.subresource}" if attributes.subresource else attributes.resource
    scope = f'in the namespace "{attributes.namespace}"' if attributes.namespace else "at the cluster scope"
    return ApiError(403, f'{subject} is forbidden: {user} cannot {attributes.verb} resource "{resource}" in API '
                         f'group "{attributes.group}" {scope}', kind=attributes.resource, name=attributes.name,
                    group=attributes.group)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized")


# Streaming subresources: a WebSocket upgrade is a GET, yet it needs `create`, as on a 1.30+ server.
_CONNECT_SUBRESOURCES = ("exec", "attach", "portforward")


def request_verb(method: str, named: bool, watch: bool, subresource: str = "") -> str:
    """The RBAC verb of an HTTP request on a resource URL."""
    if subresource in _CONNECT_SUBRESOURCES:
        return "create"
    if method in ("GET", "HEAD"):
        return "get" if named else ("watch" if watch else "list")
    if method == "DELETE":
        return "delete" if named else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


def review_status(authorizer: Authorizer, kind: str, spec: Mapping[str, Any], caller: UserInfo,
                  namespace: str) -> Obj:
    """The status of a review: who the caller is (SelfSubjectReview), what they may do in a namespace
    (SelfSubjectRulesReview), or whether the subject may do what the spec asks (the caller for
    SelfSubjectAccessReview, `spec.user` for (Local)SubjectAccessReview)."""
    if kind == "SelfSubjectReview":
        return {"userInfo": caller.as_status()}
    if kind == "SelfSubjectRulesReview":
        return authorizer.rules_of(caller, str(spec.get("namespace", "")))
    subject = caller if kind == "SelfSubjectAccessReview" else user_named(
        str(spec.get("user", "")), spec.get("groups") or (), str(spec.get("uid", "")))
    attributes = Attributes.from_review(subject, spec)
    if kind == "LocalSubjectAccessReview":
        attributes = replace(attributes, namespace=namespace)
    if authorizer.allowed(attributes):
        return {"allowed": True, "reason": "RBAC: allowed"}
    return {"allowed": False}


def impersonated(caller: UserInfo, headers: Mapping[str, str], groups: list[str], authorizer: Authorizer) -> UserInfo:
    """The user named by `Impersonate-User` (and `Impersonate-Group`), if the caller may impersonate them."""
    name = headers.get("Impersonate-User", "")
    if not name:
        if groups:
            raise ApiError(500, "requested impersonation of groups without impersonating a user")
        return caller
    target = user_named(name, groups, headers.get("Impersonate-Uid", ""))
    if name.startswith(SERVICE_ACCOUNT_PREFIX):
        namespace, _, account = name[len(SERVICE_ACCOUNT_PREFIX):].partition(":")
        checks = [Attributes(caller, "impersonate", "", "serviceaccounts", namespace=namespace, name=account)]
    else:
        checks = [Attributes(caller, "impersonate", "", "users", name=name)]
    checks += [Attributes(caller, "impersonate", "", "groups", name=group) for group in groups]
    for check in checks:
        authorizer.require(check)
    return target
