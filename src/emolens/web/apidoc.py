"""The API reference page's content, walked from openapi.json when the page is asked for.

The HTML reference is made from the same document the API serves, so the two cannot drift;
a template over this flattened form is all it takes (no Swagger UI to vendor, no script).
"""

from __future__ import annotations

import json
from importlib import resources

METHODS = ("get", "post", "put", "patch", "delete")


def load_spec() -> dict:
    """The OpenAPI document shipped with the package (a fresh copy: callers may change it)."""
    return json.loads((resources.files("emolens.web") / "openapi.json").read_text())


def _resolve(spec: dict, node: dict) -> dict:
    """Follow a local ``$ref`` (``#/components/...``); other nodes come back as they are."""
    ref = node.get("$ref")
    if not ref:
        return node
    target = spec
    for key in ref.removeprefix("#/").split("/"):
        target = target[key]
    return target


def type_of(schema: dict | None) -> dict:
    """A schema in a few words, and the named schema it refers to (for a link), if any.

    Example:
        >>> type_of({"type": "array", "items": {"$ref": "#/components/schemas/Face"}})
        {'text': 'array of Face', 'ref': 'Face'}
    """
    if not schema:
        return {"text": "", "ref": None}
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return {"text": name, "ref": name}
    if schema.get("type") == "array":
        inner = type_of(schema.get("items"))
        return {"text": f"array of {inner['text']}".strip(), "ref": inner["ref"]}
    text = schema.get("type", "any")
    if schema.get("format"):
        text += f" ({schema['format']})"
    if "enum" in schema:
        text += ": " + " | ".join(str(v) for v in schema["enum"])
    if schema.get("nullable"):
        text += " or null"
    return {"text": text, "ref": None}


def _fields(schema: dict) -> list[dict]:
    required = set(schema.get("required", ()))
    return [
        {"name": name, "required": name in required, "description": prop.get("description", ""), **type_of(prop)}
        for name, prop in schema.get("properties", {}).items()
    ]


def _parameters(spec: dict, nodes: list[dict]) -> list[dict]:
    params = [_resolve(spec, p) for p in nodes]
    return [
        {
            "name": p["name"],
            "in": p["in"],
            "required": bool(p.get("required")),
            "description": p.get("description", ""),
            **type_of(p.get("schema")),
        }
        for p in params
    ]


def _body(spec: dict, node: dict | None) -> list[dict]:
    if not node:
        return []
    body = _resolve(spec, node)
    out = []
    for kind, media in body.get("content", {}).items():
        schema = media.get("schema", {})
        out.append({"content_type": kind, "fields": _fields(_resolve(spec, schema)), **type_of(schema)})
    return out


def _responses(spec: dict, node: dict) -> list[dict]:
    out = []
    for status, response in node.items():
        response = _resolve(spec, response)
        media = next(iter(response.get("content", {}).items()), None)
        out.append(
            {
                "status": status,
                "description": response.get("description", ""),
                "content_type": media[0] if media else "",
                **type_of(media[1].get("schema") if media else None),
            }
        )
    return out


def reference(spec: dict) -> dict:
    """Flatten an OpenAPI 3 document for the reference page.

    Returns:
        ``{"title", "version", "description", "base", "operations": [...], "schemas": [...]}``;
        each operation has ``method``, ``path``, ``summary``, ``description``, ``parameters``,
        ``body`` and ``responses``; each schema ``name``, ``description`` and ``fields``.
    """
    operations = []
    for path, item in spec.get("paths", {}).items():
        shared = item.get("parameters", [])
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            operations.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "anchor": f"{method}-{path.strip('/').replace('/', '-').replace('{', '').replace('}', '')}",
                    "summary": op.get("summary", ""),
                    "description": op.get("description", ""),
                    "parameters": _parameters(spec, shared + op.get("parameters", [])),
                    "body": _body(spec, op.get("requestBody")),
                    "responses": _responses(spec, op.get("responses", {})),
                }
            )
    schemas = [
        {"name": name, "description": schema.get("description", ""), "fields": _fields(schema), **type_of(schema)}
        for name, schema in spec.get("components", {}).get("schemas", {}).items()
    ]
    info = spec.get("info", {})
    return {
        "title": info.get("title", "API"),
        "version": info.get("version", ""),
        "description": info.get("description", ""),
        "operations": operations,
        "schemas": schemas,
    }
