"""Request bodies in `application/vnd.kubernetes.protobuf`, decoded into the JSON objects they stand for.

client-go's typed clients (kubectl `create namespace|configmap|secret|service`, `auth can-i`,
`auth whoami`; Helm's release storage) send built-in objects as protobuf and accept
`application/vnd.kubernetes.protobuf, application/json` back, so answering in JSON is enough. A 415
does not help: client-go falls back to JSON on 415 only for CBOR, so a protobuf body must be read.

The envelope is the 4-byte magic `k8s\\x00` and a `runtime.Unknown` (typeMeta, raw, contentEncoding,
contentType); `raw` is the object's message. The field numbers below are those of the `generated.proto`
files of k8s.io/api and k8s.io/apimachinery for the kinds these clients send. Go's generated marshallers
write every non-pointer scalar, so empty strings, zeros and `false` are dropped on decoding, as
`omitempty` does in JSON, except for the fields listed in `keep_zero`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .errors import ApiError

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

# Field types: scalars, a nested message (by name), maps and the special encodings of apimachinery.
STRING, BYTES, INT, BOOL, TIME, INT_OR_STRING = "string", "bytes", "int", "bool", "time", "intorstring"


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # one of the scalar kinds above, or the name of a message in MESSAGES
    repeated: bool = False
    map_value: str | None = None  # a map<string, map_value>


@dataclass(frozen=True)
class Message:
    fields: dict[int, Field]
    keep_zero: frozenset[str] = field(default_factory=frozenset)


def _message(*fields: tuple[int, Field], keep_zero: tuple[str, ...] = ()) -> Message:
    return Message(dict(fields), frozenset(keep_zero))


def _f(number: int, name: str, kind: str, repeated: bool = False, map_value: str | None = None) -> tuple[int, Field]:
    return number, Field(name, kind, repeated, map_value)


MESSAGES: dict[str, Message] = {
    "ObjectMeta": _message(
        _f(1, "name", STRING), _f(2, "generateName", STRING), _f(3, "namespace", STRING), _f(5, "uid", STRING),
        _f(6, "resourceVersion", STRING), _f(7, "generation", INT), _f(8, "creationTimestamp", TIME),
        _f(9, "deletionTimestamp", TIME), _f(10, "deletionGracePeriodSeconds", INT),
        _f(11, "labels", STRING, map_value=STRING), _f(12, "annotations", STRING, map_value=STRING),
        _f(13, "ownerReferences", "OwnerReference", repeated=True), _f(14, "finalizers", STRING, repeated=True),
    ),
    "OwnerReference": _message(
        _f(1, "kind", STRING), _f(3, "name", STRING), _f(4, "uid", STRING), _f(5, "apiVersion", STRING),
        _f(6, "controller", BOOL), _f(7, "blockOwnerDeletion", BOOL),
    ),
    "Namespace": _message(_f(1, "metadata", "ObjectMeta"), _f(2, "spec", "NamespaceSpec")),
    "NamespaceSpec": _message(_f(1, "finalizers", STRING, repeated=True)),
    "ConfigMap": _message(
        _f(1, "metadata", "ObjectMeta"), _f(2, "data", STRING, map_value=STRING),
        _f(3, "binaryData", STRING, map_value=BYTES), _f(4, "immutable", BOOL), keep_zero=("immutable",),
    ),
    "Secret": _message(
        _f(1, "metadata", "ObjectMeta"), _f(2, "data", STRING, map_value=BYTES), _f(3, "type", STRING),
        _f(4, "stringData", STRING, map_value=STRING), _f(5, "immutable", BOOL), keep_zero=("immutable",),
    ),
    "ServiceAccount": _message(
        _f(1, "metadata", "ObjectMeta"), _f(4, "automountServiceAccountToken", BOOL),
        keep_zero=("automountServiceAccountToken",),
    ),
    "Service": _message(_f(1, "metadata", "ObjectMeta"), _f(2, "spec", "ServiceSpec")),
    "ServiceSpec": _message(
        _f(1, "ports", "ServicePort", repeated=True), _f(2, "selector", STRING, map_value=STRING),
        _f(3, "clusterIP", STRING), _f(4, "type", STRING), _f(5, "externalIPs", STRING, repeated=True),
        _f(7, "sessionAffinity", STRING), _f(10, "externalName", STRING), _f(18, "clusterIPs", STRING, repeated=True),
    ),
    "ServicePort": _message(
        _f(1, "name", STRING), _f(2, "protocol", STRING), _f(3, "port", INT), _f(4, "targetPort", INT_OR_STRING),
        _f(5, "nodePort", INT), _f(6, "appProtocol", STRING), keep_zero=("port",),
    ),
    "SelfSubjectAccessReview": _message(_f(1, "metadata", "ObjectMeta"), _f(2, "spec", "SelfSubjectAccessReviewSpec")),
    "SelfSubjectAccessReviewSpec": _message(
        _f(1, "resourceAttributes", "ResourceAttributes"), _f(2, "nonResourceAttributes", "NonResourceAttributes"),
    ),
    "SubjectAccessReview": _message(_f(1, "metadata", "ObjectMeta"), _f(2, "spec", "SubjectAccessReviewSpec")),
    "SubjectAccessReviewSpec": _message(
        _f(1, "resourceAttributes", "ResourceAttributes"), _f(2, "nonResourceAttributes", "NonResourceAttributes"),
        _f(3, "user", STRING), _f(4, "groups", STRING, repeated=True), _f(6, "uid", STRING),
    ),
    "ResourceAttributes": _message(
        _f(1, "namespace", STRING), _f(2, "verb", STRING), _f(3, "group", STRING), _f(4, "version", STRING),
        _f(5, "resource", STRING), _f(6, "subresource", STRING), _f(7, "name", STRING),
    ),
    "NonResourceAttributes": _message(_f(1, "path", STRING), _f(2, "verb", STRING)),
    "SelfSubjectReview": _message(_f(1, "metadata", "ObjectMeta")),
    "Role": _message(_f(1, "metadata", "ObjectMeta"), _f(2, "rules", "PolicyRule", repeated=True)),
    "ClusterRole": _message(_f(1, "metadata", "ObjectMeta"), _f(2, "rules", "PolicyRule", repeated=True)),
    "PolicyRule": _message(
        _f(1, "verbs", STRING, repeated=True), _f(2, "apiGroups", STRING, repeated=True),
        _f(3, "resources", STRING, repeated=True), _f(4, "resourceNames", STRING, repeated=True),
        _f(5, "nonResourceURLs", STRING, repeated=True),
    ),
    "RoleBinding": _message(_f(1, "metadata", "ObjectMeta"), _f(2, "subjects", "Subject", repeated=True),
                            _f(3, "roleRef", "RoleRef")),
    "ClusterRoleBinding": _message(_f(1, "metadata", "ObjectMeta"), _f(2, "subjects", "Subject", repeated=True),
                                   _f(3, "roleRef", "RoleRef")),
    "Subject": _message(_f(1, "kind", STRING), _f(2, "apiGroup", STRING), _f(3, "name", STRING),
                        _f(4, "namespace", STRING)),
    "RoleRef": _message(_f(1, "apiGroup", STRING), _f(2, "kind", STRING), _f(3, "name", STRING)),
    "SelfSubjectRulesReview": _message(_f(1, "metadata", "ObjectMeta"), _f(2, "spec", "SelfSubjectRulesReviewSpec")),
    "SelfSubjectRulesReviewSpec": _message(_f(1, "namespace", STRING)),
    "DeleteOptions": _message(
        _f(1, "gracePeriodSeconds", INT), _f(2, "preconditions", "Preconditions"), _f(3, "orphanDependents", BOOL),
        _f(4, "propagationPolicy", STRING), _f(5, "dryRun", STRING, repeated=True),
        keep_zero=("gracePeriodSeconds", "orphanDependents"),
    ),
    "Preconditions": _message(_f(1, "uid", STRING), _f(2, "resourceVersion", STRING)),
    "TokenRequest": _message(_f(1, "metadata", "ObjectMeta"), _f(2, "spec", "TokenRequestSpec")),
    "TokenRequestSpec": _message(
        _f(1, "audiences", STRING, repeated=True), _f(4, "expirationSeconds", INT),
    ),
}

_TIME = _message(_f(1, "seconds", INT), _f(2, "nanos", INT))
_INT_OR_STRING = _message(_f(1, "type", INT), _f(2, "intVal", INT), _f(3, "strVal", STRING))
_MAP_ENTRY_KEY, _MAP_ENTRY_VALUE = 1, 2


def _varint(data: bytes, offset: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if offset >= len(data):
            raise ValueError("truncated varint")
        byte = data[offset]
        offset += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, offset
        shift += 7


def _wire_fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) pairs: an int for varints and fixed-width values, bytes for length-delimited."""
    offset = 0
    while offset < len(data):
        key, offset = _varint(data, offset)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, offset = _varint(data, offset)
            yield number, value
        elif wire_type == 2:
            length, offset = _varint(data, offset)
            if offset + length > len(data):
                raise ValueError("truncated field")
            yield number, data[offset:offset + length]
            offset += length
        elif wire_type in (1, 5):
            width = 8 if wire_type == 1 else 4
            yield number, int.from_bytes(data[offset:offset + width], "little")
            offset += width
        else:
            raise ValueError(f"unsupported wire type {wire_type}")


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _scalar(kind: str, value: int | bytes) -> Any:
    if kind == STRING:
        return bytes(value).decode() if isinstance(value, bytes) else str(value)
    if kind == BYTES:
        return base64.b64encode(bytes(value) if isinstance(value, bytes) else b"").decode()
    if kind == BOOL:
        return bool(value)
    if kind == INT:
        return _signed(value) if isinstance(value, int) else 0
    if kind == TIME:
        parts = _decode(bytes(value), _TIME) if isinstance(value, bytes) else {}
        if not parts.get("seconds"):
            return None
        return datetime.fromtimestamp(parts["seconds"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if kind == INT_OR_STRING:
        parts = _decode(bytes(value), _INT_OR_STRING) if isinstance(value, bytes) else {}
        return parts.get("strVal", "") if parts.get("type") == 1 else parts.get("intVal", 0)
    if not isinstance(value, bytes):
        raise ValueError(f"field of message {kind} is not length-delimited")
    return _decode(value, MESSAGES[kind])


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == 0 or value is False or value == {} or value == []


def _decode(data: bytes, message: Message) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for number, value in _wire_fields(data):
        spec = message.fields.get(number)
        if spec is None:
            continue  # a field this table does not know: dropped, as pruning would
        if spec.map_value is not None:
            entry = dict(_wire_fields(bytes(value))) if isinstance(value, bytes) else {}
            key = _scalar(spec.kind, entry.get(_MAP_ENTRY_KEY, b""))
            result.setdefault(spec.name, {})[key] = _scalar(spec.map_value, entry.get(_MAP_ENTRY_VALUE, b""))
        elif spec.repeated:
            result.setdefault(spec.name, []).append(_scalar(spec.kind, value))
        else:
            result[spec.name] = _scalar(spec.kind, value)
    return {k: v for k, v in result.items() if k in message.keep_zero or not _empty(v)}


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded built-in object; 415 for a kind this server cannot read."""
    if not body.startswith(MAGIC):
        raise ApiError(400, "the body of the request was not a Kubernetes protobuf message (no k8s magic)")
    try:
        envelope: dict[int, Any] = {}
        for number, value in _wire_fields(body[len(MAGIC):]):
            envelope[number] = value
        type_meta = dict(_wire_fields(envelope.get(1, b"")))
        api_version = bytes(type_meta.get(1, b"")).decode()
        kind = bytes(type_meta.get(2, b"")).decode()
        message = MESSAGES.get(kind)
        if message is None:
            raise ApiError(415, f'the body of the request was in an unknown format - protobuf for kind "{kind}" is '
                                "not served; accepted media types include: application/json, application/yaml")
        obj = _decode(bytes(envelope.get(2, b"")), message)
    except (ValueError, UnicodeDecodeError, KeyError) as error:
        raise ApiError(400, f"the body of the request could not be decoded as protobuf: {error}") from error
    return {"apiVersion": api_version, "kind": kind, **obj}
