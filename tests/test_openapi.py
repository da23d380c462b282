"""The hand-written OpenAPI document matches the app: its routes, and the real responses."""

from __future__ import annotations

import re

import pytest
from jsonschema import Draft4Validator

from web.openapi import openapi_document
from webutil import IBM_ID

DOC = openapi_document()
METHODS = {"get", "post", "put", "patch", "delete"}


def as_json_schema(node):
    """OpenAPI 3.0 schema objects -> JSON Schema: ``nullable: true`` becomes a ``null`` type."""
    if isinstance(node, list):
        return [as_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: as_json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable"):
        out["type"] = [node["type"], "null"]
    return out


def validator(name: str) -> Draft4Validator:
    root = {"$ref": f"#/components/schemas/{name}", "components": as_json_schema(DOC["components"])}
    return Draft4Validator(root)


def operation(path: str, method: str) -> dict:
    return DOC["paths"][path][method]


def response_schema(op: dict, status: int) -> str:
    response = op["responses"][str(status)]
    if "$ref" in response:
        response = DOC["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]


def test_document_is_openapi_3_0_with_resolvable_refs() -> None:
    assert DOC["openapi"].startswith("3.0.")
    refs = re.findall(r"'\$ref': '#/([^']+)'", repr(DOC))
    assert refs
    for ref in refs:
        node = DOC
        for part in ref.split("/"):
            node = node[part]
    for name in DOC["components"]["schemas"]:
        Draft4Validator.check_schema(as_json_schema(DOC["components"]["schemas"][name]))


def test_every_api_route_is_documented_and_nothing_else(web_app) -> None:
    routes = set()
    for rule in web_app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            routes |= {(path, m.lower()) for m in rule.methods if m.lower() in METHODS}
    documented = {(p, m) for p, ops in DOC["paths"].items() for m in ops if m in METHODS}
    assert routes == documented


CASES = [
    ("get", "/api/search?q=export+controls&limit=3", "/api/search", 200),
    (
        "get",
        "/api/search?q=export&provider=Reuters&topic=AI&since=2020-01-01&until=2021-01-01&sort=newest",
        "/api/search",
        200,
    ),
    ("get", "/api/search?q=zzqxwvvy&mode=keyword", "/api/search", 200),
    ("get", "/api/search?q=x&limit=0", "/api/search", 400),
    ("post", "/api/search?q=x", "/api/search", 405),
    ("get", f"/api/articles/{IBM_ID}", "/api/articles/{article_id}", 200),
    ("get", "/api/articles/AAAAAAAAAAA", "/api/articles/{article_id}", 404),
    ("get", "/api/articles/bad", "/api/articles/{article_id}", 404),
    ("get", f"/api/articles/{IBM_ID}/related?limit=2", "/api/articles/{article_id}/related", 200),
    ("get", f"/api/articles/{IBM_ID}/related?limit=0", "/api/articles/{article_id}/related", 400),
    ("get", "/api/articles/AAAAAAAAAAA/related", "/api/articles/{article_id}/related", 404),
    ("post-json", "/api/related", "/api/related", 200),
    ("post-text", "/api/related", "/api/related", 415),
    ("post-bad", "/api/related", "/api/related", 400),
    ("get", "/api/related", "/api/related", 405),
    ("get", "/api/health", "/api/health", 200),
    ("get", "/api/stats", "/api/stats", 200),
]


def call(client, how: str, url: str):
    if how == "post-json":
        return client.post(url, json={"text": "facial recognition", "limit": 3})
    if how == "post-text":
        return client.post(url, data="facial recognition", content_type="text/plain")
    if how == "post-bad":
        return client.post(url, data="{oops", content_type="application/json")
    return client.open(url, method=how.upper())


@pytest.mark.parametrize(("how", "url", "path", "status"), CASES)
def test_real_responses_match_the_schemas(client, how: str, url: str, path: str, status: int) -> None:
    response = call(client, how, url)
    assert response.status_code == status
    assert response.mimetype == "application/json"
    method = "post" if how.startswith("post") else how
    ops = DOC["paths"][path]
    op = ops.get(method) or next(iter(ops.values()))  # a 405 is documented on the route's real method
    assert str(status) in op["responses"], f"{status} is not documented for {method} {path}"
    errors = sorted(validator(response_schema(op, status)).iter_errors(response.get_json()), key=str)
    assert not errors, [e.message for e in errors]


def test_unknown_api_url_is_a_documented_error_shape(client) -> None:
    response = client.get("/api/no/such/thing")
    assert response.status_code == 404
    assert not list(validator("Error").iter_errors(response.get_json()))


def test_openapi_endpoint_serves_the_document(client) -> None:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200 and response.get_json() == DOC


def test_schemas_reject_drift() -> None:
    """The schemas are closed: an extra or a missing field in a response would fail validation."""
    assert list(validator("Error").iter_errors({"error": {"status": 400, "type": "x", "message": "m", "extra": 1}}))
    assert list(validator("Health").iter_errors({"status": "ok", "generation": "gen-000001"}))


FUZZED = [(path, method) for path, ops in DOC["paths"].items() for method in ops if path != "/api/openapi.json"]


@pytest.mark.parametrize(("path", "method"), FUZZED)
def test_generated_requests_get_documented_responses(web_app, path: str, method: str) -> None:
    """Schemathesis sends requests built from the document, valid and invalid, and checks each
    answer: never a 5xx, a documented status and content type, a body that fits its schema.
    (Its "valid data is accepted" check is left out: since > until or a blank q are 400s that
    the document cannot express.)"""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    op = schemathesis.openapi.from_wsgi("/api/openapi.json", web_app)[path][method.upper()]
    modes = [GenerationMode.POSITIVE]
    if len(op.query) or len(op.path_parameters) or len(op.body):
        modes.append(GenerationMode.NEGATIVE)
    for mode in modes:

        @given(case=op.as_strategy(generation_mode=mode))
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case) -> None:
            case.call_and_validate(checks=checks)

        check()
