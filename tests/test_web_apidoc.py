"""The API reference page (/api) and the walk over openapi.json behind it (emolens.web.apidoc)."""

from __future__ import annotations

import re

import pytest

from emolens.web.apidoc import load_spec, reference, type_of


@pytest.mark.parametrize(
    ("schema", "text", "ref"),
    [
        ({"$ref": "#/components/schemas/Job"}, "Job", "Job"),
        ({"type": "array", "items": {"$ref": "#/components/schemas/Face"}}, "array of Face", "Face"),
        ({"type": "array", "items": {"type": "integer"}}, "array of integer", None),
        ({"type": "string", "enum": ["0", "1"]}, "string: 0 | 1", None),
        ({"type": "string", "format": "binary"}, "string (binary)", None),
        ({"type": "number", "nullable": True}, "number or null", None),
        ({}, "", None),
        (None, "", None),
    ],
)
def test_type_of(schema, text, ref):
    assert type_of(schema) == {"text": text, "ref": ref}


def test_reference_resolves_shared_parameters_and_responses():
    doc = reference(load_spec())
    files = next(op for op in doc["operations"] if op["path"] == "/jobs/{job_id}/files/{kind}")
    assert [(p["name"], p["in"], p["required"]) for p in files["parameters"]] == [
        ("job_id", "path", True),  # a $ref to components/parameters, shared by the path's methods
        ("kind", "path", True),
        ("download", "query", False),
    ]
    assert files["parameters"][1]["text"] == "string: video | csv | json | plot | series"
    assert [(r["status"], r["ref"]) for r in files["responses"]] == [("200", None), ("404", "Error")]
    image = next(op for op in doc["operations"] if op["path"] == "/images")
    assert [(f["name"], f["required"]) for f in image["body"][0]["fields"]] == [("image", True), ("model", False)]


def test_api_page_lists_every_operation_and_schema_of_the_document(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    r = client.get("/api")
    assert r.status_code == 200 and r.mimetype == "text/html"
    html = r.data.decode()
    for path, item in spec["paths"].items():
        for method in item.keys() - {"parameters"}:
            assert re.search(rf">{method.upper()}</span> <code>/api/v1{re.escape(path)}</code>", html), (method, path)
    for name in spec["components"]["schemas"]:
        assert f'id="schema-{name}"' in html
    links = set(re.findall(r'href="#(schema-\w+)"', html))
    assert links and all(f'id="{target}"' in html for target in links)  # no link to nowhere
    assert "string: video | csv | json | plot" in html
    assert "<script>" not in html and "style=" not in html


def test_api_page_is_made_from_the_document_at_each_request(client, monkeypatch):
    spec = load_spec()
    spec["paths"]["/later"] = {"get": {"summary": "Added after the page was written", "responses": {}}}
    monkeypatch.setattr("emolens.web.pages.load_spec", lambda: spec)
    html = client.get("/api").data.decode()
    assert "<code>/api/v1/later</code>" in html and "Added after the page was written" in html


@pytest.mark.parametrize("url", ["/", "/cameras", "/video", "/image", "/model", "/api"])
def test_every_page_links_the_api_reference(client, url):
    html = client.get(url).data.decode()
    assert 'href="/api"' in html and 'href="/api/v1/openapi.json"' in html
