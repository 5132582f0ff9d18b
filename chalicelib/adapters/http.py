"""One way to serve a route: authenticate, read and validate the body and query, call the
service, answer JSON; every failure in one error shape. Also builds the OpenAPI document
from the same route table, so the document cannot drift from the code."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from aws_lambda_powertools.metrics import MetricUnit
from chalice import Blueprint, Response
from pydantic import BaseModel, RootModel, ValidationError

from chalicelib.domain.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)
from chalicelib.domain.identity import Principal
from chalicelib.observability import logger, metrics

Auth = Literal["public", "operator", "member", "admin"]
MAX_BODY_BYTES = 1_048_576
MAX_LIMIT = 200
DEFAULT_LIMIT = 50
# Bodies are always read as JSON; `curl -d` sends form-urlencoded, so accept that label too
# rather than answer Chalice's own 415 in another error shape.
BODY_TYPES = ["application/json", "application/x-www-form-urlencoded", "text/plain"]

_STATUS: dict[type[DomainError], int] = {
    InvalidInput: 400, Unauthorized: 401, Forbidden: 403, NotFound: 404, Conflict: 409,
    PayloadTooLarge: 413,
}


@dataclass(frozen=True)
class Call:
    """What a route function gets: who calls, the validated body and query, the path params."""

    principal: Principal | None
    body: Any
    params: dict[str, str]
    query: dict[str, str]
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None

    @property
    def workspace_id(self) -> str:
        assert self.principal is not None
        return self.principal.require_workspace()


@dataclass(frozen=True)
class RouteSpec:
    path: str
    method: str
    summary: str
    auth: Auth
    body: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    paginated: bool
    tag: str


def json_path(location: tuple[int | str, ...]) -> str:
    path = "$"
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def error_response(status: int, code: str, message: str, details: Any = None) -> Response:
    body = {"error": {"code": code, "message": message, "details": details}}
    return Response(body=json.dumps(body), status_code=status,
                    headers={"Content-Type": "application/json"})


def _validation_error(error: ValidationError, tagged_union: bool) -> InvalidInput:
    def location(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
        # a tagged union's errors start with the tag of the branch tried: not part of the body
        return loc[1:] if tagged_union and loc and isinstance(loc[0], str) else loc

    problems = [{"path": json_path(location(tuple(item["loc"]))), "message": item["msg"],
                 "type": item["type"]} for item in error.errors()]
    first = problems[0]
    return InvalidInput(f"{first['path']}: {first['message']}", code="invalid_request",
                        details={"path": first["path"], "errors": problems})


def read_json(raw: bytes | None) -> Any:
    """The request body as JSON, or InvalidInput/PayloadTooLarge saying what is wrong."""
    if raw is not None and len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}",
                              details={"limit": MAX_BODY_BYTES})
    if not raw or not raw.strip():
        raise InvalidInput("the request body is empty; send a JSON object", code="invalid_json",
                           details={"path": "$"})
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise InvalidInput("the body is not UTF-8", code="invalid_json",
                           details={"path": "$"}) from None
    except json.JSONDecodeError as error:
        raise InvalidInput(f"malformed JSON: {error.msg}", code="invalid_json",
                           details={"path": "$", "line": error.lineno,
                                    "column": error.colno}) from None


def validate(model: type[BaseModel], document: Any) -> BaseModel:
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise _validation_error(error, issubclass(model, RootModel)) from None


def _page_args(query: dict[str, str]) -> tuple[int, str | None]:
    raw = query.get("limit")
    try:
        limit = DEFAULT_LIMIT if raw is None else int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be a whole number from 1 to {MAX_LIMIT}",
                           code="invalid_limit", details={"path": "limit"})
    return limit, query.get("cursor") or None


def _to_json(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


class Api:
    """A Blueprint plus the table of its routes (for OpenAPI)."""

    def __init__(self, import_name: str,
                 authenticate: Callable[[str | None], Principal]) -> None:
        self.blueprint = Blueprint(import_name)
        self.routes: list[RouteSpec] = []
        self._authenticate = authenticate

    def route(self, path: str, method: str, *, summary: str, auth: Auth = "member",
              body: type[BaseModel] | None = None, response: type[BaseModel] | None = None,
              status: int = 200, paginated: bool = False, tag: str = "default",
              ) -> Callable[[Callable[[Call], Any]], Callable[[Call], Any]]:
        spec = RouteSpec(path=path, method=method, summary=summary, auth=auth, body=body,
                         response=response, status=status, paginated=paginated, tag=tag)
        self.routes.append(spec)

        def decorator(function: Callable[[Call], Any]) -> Callable[[Call], Any]:
            @functools.wraps(function)
            def handler(**params: str) -> Response:
                return self._serve(spec, function, params)

            self.blueprint.route(path, methods=[method], content_types=BODY_TYPES)(handler)
            return function

        return decorator

    def _serve(self, spec: RouteSpec, function: Callable[[Call], Any],
               params: dict[str, str]) -> Response:
        request = self.blueprint.current_request
        response = self._respond(spec, function, params, request)
        metrics.add_metric(name=f"Http{response.status_code // 100}xx", unit=MetricUnit.Count,
                           value=1)
        return response

    def _respond(self, spec: RouteSpec, function: Callable[[Call], Any],
                 params: dict[str, str], request: Any) -> Response:
        try:
            principal = None
            if spec.auth != "public":
                principal = self._authenticate(request.headers.get("authorization"))
                if spec.auth == "operator":
                    principal.require_operator()
                elif spec.auth == "admin":
                    principal.require_admin()
                else:
                    principal.require_workspace()
            body = validate(spec.body, read_json(request.raw_body)) if spec.body else None
            query = dict(request.query_params or {})
            limit, cursor = _page_args(query) if spec.paginated else (DEFAULT_LIMIT, None)
            result = function(Call(principal=principal, body=body, params=params, query=query,
                                   limit=limit, cursor=cursor))
        except DomainError as error:
            status = next((code for kind, code in _STATUS.items() if isinstance(error, kind)), 400)
            return error_response(status, error.code, error.message, error.details)
        except Exception:
            logger.exception("unhandled error", extra={"path": spec.path})
            return error_response(500, "internal", "something went wrong on our side")
        if spec.status == 204:
            return Response(body="", status_code=204)
        return Response(body=json.dumps(_to_json(result)), status_code=spec.status,
                        headers={"Content-Type": "application/json"})

    # -- OpenAPI -------------------------------------------------------------------------------

    def openapi(self, title: str, version: str) -> dict[str, Any]:
        from pydantic.json_schema import models_json_schema

        models = {model for spec in self.routes for model in (spec.body, spec.response) if model}
        _, definitions = models_json_schema(
            [(model, "validation") for model in sorted(models, key=lambda m: m.__name__)],
            ref_template="#/components/schemas/{model}")
        schemas: dict[str, Any] = dict(definitions.get("$defs", {}))
        schemas["Error"] = _ERROR_SCHEMA
        paths: dict[str, Any] = {}
        for spec in self.routes:
            operation: dict[str, Any] = {"summary": spec.summary, "tags": [spec.tag],
                                         "responses": _responses(spec)}
            parameters = [{"name": name, "in": "path", "required": True,
                           "schema": {"type": "string"}}
                          for name in _path_params(spec.path)]
            if spec.paginated:
                parameters += [
                    {"name": "limit", "in": "query", "schema": {
                        "type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                        "default": DEFAULT_LIMIT}},
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}}]
            if parameters:
                operation["parameters"] = parameters
            if spec.body:
                operation["requestBody"] = {"required": True, "content": {"application/json": {
                    "schema": {"$ref": f"#/components/schemas/{spec.body.__name__}"}}}}
            if spec.auth != "public":
                operation["security"] = [{"bearer": []}]
            paths.setdefault(spec.path, {})[spec.method.lower()] = operation
        return {
            "openapi": "3.1.0",
            "info": {"title": title, "version": version},
            "paths": paths,
            "components": {"schemas": schemas, "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"}}},
        }


_ERROR_SCHEMA = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string"}, "message": {"type": "string"}, "details": {}}}},
}


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _responses(spec: RouteSpec) -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    responses: dict[str, Any] = {}
    if spec.status == 204:
        responses["204"] = {"description": "done"}
    else:
        content = ({"application/json": {"schema": {
            "$ref": f"#/components/schemas/{spec.response.__name__}"}}}
            if spec.response else {"application/json": {}})
        responses[str(spec.status)] = {"description": "success", "content": content}
    if spec.body or spec.paginated:
        responses["400"] = {"description": "invalid input", **error}
    if spec.body:
        responses["413"] = {"description": "body over 1 MB", **error}
    if spec.auth != "public":
        responses["401"] = {"description": "missing or invalid API key", **error}
        responses["403"] = {"description": "not allowed for this key", **error}
    if _path_params(spec.path):
        responses["404"] = {"description": "not found in this workspace", **error}
    return responses
