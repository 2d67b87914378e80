"""What every API endpoint shares: token authentication, the rate limit, JSON in and out,
and errors as ``{"error": {"code", "message", "field"}}`` with the right status.

Views are plain functions wrapped in ``api_view``; they raise ``ApiError`` (or Http404)
and return data, which is sent as JSON. Only the Authorization header authenticates: the
session cookie is ignored, which is why the endpoints can be exempt from CSRF checks.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from drafts.api.tokens import ApiToken

log = logging.getLogger(__name__)

View = Callable[..., Any]


class ApiError(Exception):
    """A request the API refuses: the status, a stable code, words, and the field at fault.

    ``details`` go into the error object too (e.g. a draft's current status and version).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        details: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}
        self.details = details or {}

    def response(self) -> JsonResponse:
        error = {"code": self.code, "message": self.message, "field": self.field, **self.details}
        response = JsonResponse({"error": error}, status=self.status, encoder=DjangoJSONEncoder)
        for name, value in self.headers.items():
            response[name] = value
        return response


def bad_request(field: str | None, message: str, code: str = "invalid") -> ApiError:
    return ApiError(400, code, message, field)


def json_response(data: object, status: int = 200, **headers: str) -> JsonResponse:
    response = JsonResponse(data, status=status, encoder=DjangoJSONEncoder, safe=False)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def bearer_token(request: HttpRequest) -> str:
    """The token from ``Authorization: Bearer …``, or ""."""
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    return secret.strip() if scheme.lower() == "bearer" else ""


def seconds_until_allowed(token: ApiToken) -> int:
    """0 if the token may make another request now; else how many seconds until it may.

    A count per token and clock minute in Django's cache (Redis when REDIS_URL is set, else
    a database table: every web process shares it), like the login throttle.
    """
    limit = settings.REPLYHUB_API_RATE_LIMIT
    if limit <= 0:
        return 0
    now = time.time()
    minute = int(now // 60)
    key = f"api-rate:{token.prefix}:{minute}"  # the prefix is unique, and random
    cache.add(key, 0, timeout=120)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=120)
        count = 1
    if count <= limit:
        return 0
    return max(1, math.ceil((minute + 1) * 60 - now))


def api_view(
    *methods: str, write: tuple[str, ...] = (), public: bool = False
) -> Callable[[View], View]:
    """Make ``view`` an API endpoint answering ``methods``.

    The view gets the request with ``request.user`` set to the token's user (and
    ``request.api_token``) and returns data to send as JSON, or a response. The ``write``
    methods refuse read-only tokens; ``public`` endpoints need no token at all.
    """

    def decorate(view: View) -> View:
        @csrf_exempt
        @wraps(view)
        def endpoint(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
            try:
                if request.method not in methods:
                    raise ApiError(
                        405,
                        "method_not_allowed",
                        f"{request.method} is not allowed here; use {', '.join(methods)}.",
                        headers={"Allow": ", ".join(methods)},
                    )
                if not public:
                    authenticate(request, write=request.method in write)
                result = view(request, *args, **kwargs)
            except ApiError as error:
                return error.response()
            except Http404:
                return ApiError(404, "not_found", "Not found.").response()
            except Exception:
                log.exception("API %s %s failed", request.method, request.path)
                return ApiError(500, "server_error", "Something went wrong on our side.").response()
            return result if isinstance(result, HttpResponse) else json_response(result)

        return endpoint

    return decorate


def authenticate(request: HttpRequest, write: bool) -> None:
    """Set request.user from the bearer token, or raise 401, 429 or 403."""
    secret = bearer_token(request)
    token = ApiToken.authenticate(secret) if secret else None
    if token is None:
        raise ApiError(
            401,
            "unauthorized",
            "A valid API token is required: send “Authorization: Bearer <token>”."
            if not secret
            else "This API token is unknown or has been revoked.",
            headers={"WWW-Authenticate": 'Bearer realm="ReplyHub API"'},
        )
    if wait := seconds_until_allowed(token):
        raise ApiError(
            429,
            "rate_limited",
            f"Too many requests: at most {settings.REPLYHUB_API_RATE_LIMIT} a minute per "
            f"token. Try again in {wait} seconds.",
            headers={"Retry-After": str(wait)},
        )
    if write and not token.can_write:
        raise ApiError(403, "forbidden", "This token is read-only.")
    request.user = token.user
    request.api_token = token


# --- Request bodies --------------------------------------------------------------------------


def content_type(request: HttpRequest) -> str:
    return request.content_type.split(";")[0].strip().lower() if request.content_type else ""


def read_body(request: HttpRequest) -> bytes:
    """The request body, refused with 413 beyond REPLYHUB_API_MAX_BODY_BYTES."""
    limit = settings.REPLYHUB_API_MAX_BODY_BYTES
    too_big = ApiError(
        413, "too_large", f"The request body is over the limit of {limit} bytes.", None
    )
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise too_big
    # Read past Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB): an email may be bigger.
    body = request.read(limit + 1)
    if len(body) > limit:
        raise too_big
    return body


def parse_json(body: bytes) -> dict[str, Any]:
    """A JSON object from ``body``, or 400 naming what is wrong with it."""
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise bad_request(None, f"The body is not UTF-8: {exc}.", "invalid_json") from exc
    except ValueError as exc:
        raise bad_request(None, f"The body is not valid JSON: {exc}.", "invalid_json") from exc
    if not isinstance(data, dict):
        raise bad_request(None, "The body must be a JSON object.", "invalid_json")
    return data


def json_body(request: HttpRequest) -> dict[str, Any]:
    """The request's JSON object; 415 unless it is sent as application/json."""
    if content_type(request) != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Send the body as application/json, not {content_type(request) or 'nothing'}.",
        )
    return parse_json(read_body(request))


def string_field(
    data: dict[str, Any], name: str, *, required: bool = False, max_length: int = 1000
) -> str | None:
    """``data[name]`` as a string: 400 if it is missing (when required), not a string (null
    included), or longer than ``max_length``; None if absent and optional."""
    if name not in data:
        if required:
            raise bad_request(name, f"“{name}” is required.", "required")
        return None
    value = data[name]
    if not isinstance(value, str):
        raise bad_request(name, f"“{name}” must be a string.")
    if len(value) > max_length:
        raise bad_request(name, f"“{name}” is longer than {max_length} characters.")
    if "\x00" in value:  # no database stores it (PostgreSQL refuses it in text)
        raise bad_request(name, f"“{name}” must not contain NUL characters.")
    return value


def integer_field(
    data: dict[str, Any], name: str, *, required: bool = False, minimum: int = 0
) -> int | None:
    """``data[name]`` as an integer from ``minimum`` to 2⁶³-1 (JSON true/false and null are
    not integers)."""
    if name not in data:
        if required:
            raise bad_request(name, f"“{name}” is required.", "required")
        return None
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value < 2**63:
        raise bad_request(name, f"“{name}” must be an integer of at least {minimum}.")
    return value
