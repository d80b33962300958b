"""Custom resources: served from a CRD, validated, pruned and defaulted against its schema, printed
with its columns, and listed in discovery with short names and categories."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from kubernetes.client import ApiClient, ApiextensionsV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

ARGS = ("example.io", "v1", "default", "widgets")


def widget(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}


def get_json(url: str, accept: str = "application/json") -> dict[str, Any]:
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": accept})) as response:
        body: dict[str, Any] = json.loads(response.read())
        return body


def post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read()), response.headers.get("Warning", "")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), ""


def test_crd_is_established_and_its_resources_are_served(k8s: ApiClient, widgets: CustomObjectsApi) -> None:
    crd = ApiextensionsV1Api(k8s).read_custom_resource_definition("widgets.example.io")
    assert {c.type: c.status for c in crd.status.conditions}["Established"] == "True"
    widgets.create_namespaced_custom_object(*ARGS, widget("w", {"size": 2}))
    assert [w["metadata"]["name"] for w in widgets.list_namespaced_custom_object(*ARGS)["items"]] == ["w"]


def test_schema_violations_are_422_with_a_cause_per_field(widgets: CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as caught:
        widgets.create_namespaced_custom_object(*ARGS, widget("bad", {"size": 0, "color": "green", "port": 1.5}))
    status = json.loads(caught.value.body)
    assert caught.value.status == 422 and status["reason"] == "Invalid"
    fields = {cause["field"]: cause["reason"] for cause in status["details"]["causes"]}
    assert fields == {"spec.size": "FieldValueInvalid", "spec.color": "FieldValueNotSupported",
                      "spec.port": "FieldValueTypeInvalid"}


def test_missing_required_field_is_reported_with_its_path(widgets: CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as caught:
        widgets.create_namespaced_custom_object(*ARGS, widget("bad", {}))
    causes = json.loads(caught.value.body)["details"]["causes"]
    assert causes == [{"reason": "FieldValueRequired", "message": "Required value", "field": "spec.size"}]


def test_unknown_fields_are_pruned_except_where_preserved_and_defaults_applied(widgets: CustomObjectsApi) -> None:
    created = widgets.create_namespaced_custom_object(*ARGS, widget("w", {
        "size": 1, "port": "http", "bogus": True, "extra": {"free": {"form": [1]}}, "note": None}))
    assert created["spec"] == {"size": 1, "port": "http", "extra": {"free": {"form": [1]}}, "note": None,
                               "color": "red"}


def test_int_or_string_accepts_both(widgets: CustomObjectsApi) -> None:
    widgets.create_namespaced_custom_object(*ARGS, widget("a", {"size": 1, "port": 8080}))
    widgets.create_namespaced_custom_object(*ARGS, widget("b", {"size": 1, "port": "http"}))


def test_strict_field_validation_rejects_unknown_fields_and_warn_reports_them(
        apiserver: str, widgets: CustomObjectsApi) -> None:
    url = f"{apiserver}/apis/example.io/v1/namespaces/default/widgets"
    code, status, _ = post(url + "?fieldValidation=Strict", widget("s", {"size": 1, "bogus": 1}))
    assert code == 400 and 'unknown field "spec.bogus"' in status["message"]
    code, created, warning = post(url + "?fieldValidation=Warn", widget("w", {"size": 1, "bogus": 1}))
    assert code == 201 and "bogus" not in created["spec"] and 'unknown field \\"spec.bogus\\"' in warning


def test_table_output_uses_additional_printer_columns(apiserver: str, widgets: CustomObjectsApi) -> None:
    widgets.create_namespaced_custom_object(*ARGS, widget("w", {"size": 7}))
    widgets.patch_namespaced_custom_object_status(*ARGS, "w", {"status": {"phase": "Running"}})
    table = get_json(f"{apiserver}/apis/example.io/v1/namespaces/default/widgets",
                     "application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Size", "Phase", "Age"]
    assert table["rows"][0]["cells"][:3] == ["w", 7, "Running"]
    assert table["rows"][0]["object"]["metadata"]["name"] == "w"


def test_discovery_lists_short_names_categories_and_status_subresource(
        apiserver: str, widgets: CustomObjectsApi) -> None:
    groups = get_json(f"{apiserver}/apis")["groups"]
    assert "example.io" in [g["name"] for g in groups]
    resources = {r["name"]: r for r in get_json(f"{apiserver}/apis/example.io/v1")["resources"]}
    assert resources["widgets"]["shortNames"] == ["wd"] and resources["widgets"]["categories"] == ["all"]
    assert resources["widgets"]["kind"] == "Widget" and resources["widgets"]["namespaced"] is True
    assert "widgets/status" in resources


def test_openapi_v3_advertises_field_validation_and_the_crd_schema(apiserver: str, widgets: CustomObjectsApi) -> None:
    index = get_json(f"{apiserver}/openapi/v3")["paths"]
    document = get_json(apiserver + index["apis/example.io/v1"]["serverRelativeURL"])
    patch = document["paths"]["/apis/example.io/v1/namespaces/{namespace}/widgets/{name}"]["patch"]
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
    assert document["components"]["schemas"]["io.example.v1.Widget"]["properties"]["spec"]["required"] == ["size"]


def test_crd_with_mismatched_name_is_rejected(k8s: ApiClient) -> None:
    crd = {"metadata": {"name": "wrong.example.io"}, "spec": {
        "group": "example.io", "scope": "Namespaced", "names": {"plural": "things", "kind": "Thing"},
        "versions": [{"name": "v1", "served": True, "storage": True}]}}
    with pytest.raises(ApiException) as caught:
        ApiextensionsV1Api(k8s).create_custom_resource_definition(crd)
    assert caught.value.status == 422
