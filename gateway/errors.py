"""Errors the gateway raises itself, and the one place they become OpenAI-shaped responses.

    GatewayError                  status  type
    ├── InvalidRequest            400     invalid_request_error
    ├── AuthenticationFailed      401     authentication_error
    ├── PermissionDenied          403     permission_error
    ├── NotFound                  404     not_found_error (unknown model, request id, ...)
    ├── Conflict                  409     conflict_error
    ├── PayloadTooLarge           413     invalid_request_error
    ├── RateLimited               429     rate_limit_error
    ├── HeadersTooLarge           431     invalid_request_error
    ├── UpstreamUnavailable       502     upstream_error (refused, reset, cut, bad reply)
    ├── LogUnavailable            503     server_error (the record cannot be spooled: disk full)
    └── UpstreamTimeout           504     timeout_error

Errors *from* an upstream are not translated: their status and body pass through as is.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson


class GatewayError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, param=self.param, code=self.code)


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class AuthenticationFailed(GatewayError):
    status = 401
    type = "authentication_error"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_error"


class NotFound(GatewayError):
    status = 404
    type = "not_found_error"


class Conflict(GatewayError):
    status = 409
    type = "conflict_error"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"

    def __init__(self, message: str, *, code: str | None = None, retry_after: int = 1):
        super().__init__(message, code=code)
        self.retry_after = retry_after


class HeadersTooLarge(GatewayError):
    status = 431
    type = "invalid_request_error"


class UpstreamUnavailable(GatewayError):
    status = 502
    type = "upstream_error"


class LogUnavailable(GatewayError):
    """The exchange could not be put durably in the log, so it is not acknowledged."""

    status = 503
    type = "server_error"
    retry_after = 5

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "The gateway cannot log this exchange durably right now (its spool disk is "
            "full), so it does not acknowledge it; retry in a few seconds (another replica may "
            "take it)",
            code="log_unavailable",
        )


class UpstreamTimeout(GatewayError):
    status = 504
    type = "timeout_error"


def error_body(
    message: str, type_: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_json(exc: GatewayError) -> bytes:
    return orjson.dumps(exc.body())
