"""Request bodies in `application/vnd.kubernetes.protobuf`, decoded into the JSON objects they stand for.

client-go's typed clients (kubectl `create namespace|configmap|secret|service|deployment`, `auth can-i`,
`auth whoami`; Helm's release storage) send built-in objects as protobuf and accept
`application/vnd.kubernetes.protobuf, application/json` back, so answering in JSON is enough. A 415
does not help: client-go falls back to JSON on 415 only for CBOR, so a protobuf body must be read.

The envelope is the 4-byte magic `k8s\\x00` and a `runtime.Unknown` (typeMeta, raw, contentEncoding,
contentType); `raw` is the object's message, read by the field tables of `protobuf_messages.py`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from .errors import ApiError
from .protobuf_messages import (
    BOOL,
    BYTES,
    INT,
    INT_OR_STRING,
    INT_OR_STRING_MESSAGE,
    MESSAGES,
    QUANTITY,
    QUANTITY_MESSAGE,
    STRING,
    TIME,
    TIME_MESSAGE,
    Message,
)

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

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
        parts = _decode(bytes(value), TIME_MESSAGE) if isinstance(value, bytes) else {}
        if not parts.get("seconds"):
            return None
        return datetime.fromtimestamp(parts["seconds"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if kind == QUANTITY:
        return (_decode(bytes(value), QUANTITY_MESSAGE) if isinstance(value, bytes) else {}).get("string", "")
    if kind == INT_OR_STRING:
        parts = _decode(bytes(value), INT_OR_STRING_MESSAGE) if isinstance(value, bytes) else {}
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
        elif spec.inline:
            result.update(_scalar(spec.kind, value))
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
