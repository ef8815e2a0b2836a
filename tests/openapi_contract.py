"""Validation of real responses against the public OpenAPI file, with openapi-core."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import requests
import yaml
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_schema_validator import OAS30Validator

# a verbatim copy of ../shared/reference/, so that the project stands on its own
SPEC_PATH = Path(__file__).resolve().parents[1] / "docs" / "reference" / "supermetrics-backfills-openapi.yaml"


@cache
def _spec() -> dict:
    spec = yaml.safe_load(SPEC_PATH.read_text())
    # the same API, served from loopback: only the server URL differs from production
    spec["servers"] = [{"url": "http://127.0.0.1:{port}/v1", "variables": {"port": {"default": "80"}}}]
    for item in spec["paths"].values():
        item.pop("servers", None)
    return spec


@cache
def _openapi() -> OpenAPI:
    return OpenAPI.from_dict(_spec())


def validate(response: requests.Response) -> None:
    """Raise unless the response (status, headers, body) is one the OpenAPI file describes."""
    _openapi().validate_response(RequestsOpenAPIRequest(response.request), RequestsOpenAPIResponse(response))


def validate_error_envelope(body: object) -> None:
    """For statuses the file does not list (502, 503): the body is still its ErrorResponse."""
    schemas = _spec()["components"]["schemas"]
    schema = {**schemas["ErrorResponse"], "components": {"schemas": schemas}}
    schema = _resolve(schema, schemas)
    OAS30Validator(schema).validate(body)


def _resolve(node: object, schemas: dict) -> object:
    if isinstance(node, dict):
        if "$ref" in node:
            return _resolve(schemas[node["$ref"].rsplit("/", 1)[1]], schemas)
        return {k: _resolve(v, schemas) for k, v in node.items() if k != "components"}
    if isinstance(node, list):
        return [_resolve(v, schemas) for v in node]
    return node
