"""Validation of real responses against the public OpenAPI file, with openapi-core."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import requests
import yaml
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_schema_validator import OAS30Validator

# verbatim copies of the public API descriptions, so that the project stands on its own
REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "reference"
BACKFILLS, TRANSFERS = "supermetrics-backfills-openapi.yaml", "supermetrics-transfers-openapi.yaml"


def _spec_for(url: str) -> str:
    """The description that documents this URL's endpoint."""
    return BACKFILLS if "/backfills" in url else TRANSFERS


@cache
def _spec(name: str = BACKFILLS) -> dict:
    spec = yaml.safe_load((REFERENCE / name).read_text())
    # the same API, served from loopback: only the server URL differs from production
    spec["servers"] = [{"url": "http://127.0.0.1:{port}/v1", "variables": {"port": {"default": "80"}}}]
    for item in spec["paths"].values():
        item.pop("servers", None)
    return spec


@cache
def _openapi(name: str) -> OpenAPI:
    return OpenAPI.from_dict(_spec(name))


def validate(response: requests.Response) -> None:
    """Raise unless the response (status, headers, body) is one the OpenAPI file describes."""
    request = RequestsOpenAPIRequest(response.request)
    _openapi(_spec_for(response.request.url)).validate_response(request, RequestsOpenAPIResponse(response))


def validate_request(request: requests.PreparedRequest) -> None:
    """Raise unless the request (path, query parameters) is one the OpenAPI file describes."""
    _openapi(_spec_for(request.url)).validate_request(RequestsOpenAPIRequest(request))


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
