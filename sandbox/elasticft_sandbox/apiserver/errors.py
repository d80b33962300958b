"""Kubernetes `Status` error bodies, raised as exceptions by the store and turned into responses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    500: "InternalError",
}


def status_object(outcome: str, code: int, message: str = "", reason: str = "",
                  details: dict[str, Any] | None = None) -> dict[str, Any]:
    """A `Status` object (outcome "Success" or "Failure"), the body of every answer that is no object."""
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": outcome}
    if message:
        body["message"] = message
    if reason:
        body["reason"] = reason
    body["code"] = code
    if details:
        body["details"] = details
    return body


@dataclass
class FieldCause:
    """One `details.causes` entry: which field is wrong and why (reason is e.g. FieldValueInvalid)."""

    field: str
    message: str
    reason: str = "FieldValueInvalid"


@dataclass
class ApiError(Exception):
    """An error the API answers with: HTTP code, reason, message and the object it concerns."""

    code: int
    message: str
    reason: str = ""
    kind: str = ""
    name: str = ""
    group: str = ""
    causes: list[FieldCause] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.reason = self.reason or REASONS.get(self.code, "Unknown")
        super().__init__(self.message)

    def status(self) -> dict[str, Any]:
        """The `Status` object a real API server returns for this error."""
        details: dict[str, Any] = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = [
                {"reason": cause.reason, "message": cause.message, "field": cause.field} for cause in self.causes
            ]
        return status_object("Failure", self.code, self.message, self.reason, details)


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(404, f'{qualified} "{name}" not found', kind=resource, name=name, group=group)


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(
        409, f'{qualified} "{name}" already exists', reason="AlreadyExists", kind=resource, name=name, group=group
    )


def conflict(resource: str, name: str, group: str = "") -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {qualified} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        kind=resource,
        name=name,
        group=group,
    )


def invalid(kind: str, name: str, causes: list[FieldCause], group: str = "") -> ApiError:
    qualified = f"{kind}.{group}" if group else kind
    summary = ", ".join(f"{cause.field}: {cause.message}" for cause in causes)
    return ApiError(422, f'{qualified} "{name}" is invalid: [{summary}]', kind=kind, name=name, group=group,
                    causes=causes)


def gone(message: str) -> ApiError:
    return ApiError(410, message)
