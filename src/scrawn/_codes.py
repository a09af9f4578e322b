"""The one table of error codes: each Connect code name with its gRPC status number, the HTTP status a
Connect error answer carries, and the JSON API's HTTP status; and the per-item failure codes of batch calls
(``EventFailure.errorCode``, ``TrackEventResult.errorCode``). Pure data, shared by the SDK and the server
(docs/wire-contract.md#errors)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Status:
    code: str  # the Connect code name (``invalid_argument``)
    grpc: int  # the gRPC status number
    http: int  # the HTTP status of a Connect error answer (Connect's standard mapping)
    api_http: int  # the HTTP status of the JSON API (``/api/v1``) for an error of this code


STATUSES: Final[dict[str, Status]] = {
    s.code: s
    for s in (
        Status("canceled", 1, 499, 500),
        Status("unknown", 2, 500, 500),
        Status("invalid_argument", 3, 400, 400),
        Status("deadline_exceeded", 4, 504, 500),
        Status("not_found", 5, 404, 404),
        Status("already_exists", 6, 409, 409),
        Status("permission_denied", 7, 403, 403),
        Status("resource_exhausted", 8, 429, 429),
        Status("failed_precondition", 9, 400, 412),
        Status("aborted", 10, 409, 500),
        Status("out_of_range", 11, 400, 500),
        Status("unimplemented", 12, 501, 500),
        Status("internal", 13, 500, 500),
        Status("unavailable", 14, 503, 503),
        Status("data_loss", 15, 500, 500),
        Status("unauthenticated", 16, 401, 401),
    )
}

# Connect's mapping the other way, for an error answer that is not Connect JSON (a proxy's HTML 502, an
# empty 503, ...): the code a client assumes from the bare HTTP status; any other status is ``unknown``.
CODES_BY_HTTP: Final[dict[int, str]] = {
    400: "internal",
    401: "unauthenticated",
    403: "permission_denied",
    404: "unimplemented",
    408: "deadline_exceeded",
    429: "unavailable",
    502: "unavailable",
    503: "unavailable",
    504: "unavailable",
}

# Per-item failure codes of batch calls; each error class declares its own (``ScrawnError.stream_code``).
VALIDATION_FAILED: Final = "VALIDATION_FAILED"
INVALID_DATA: Final = "INVALID_DATA"
INVALID_TIMESTAMP: Final = "INVALID_TIMESTAMP"
PRICE_CALCULATION_FAILED: Final = "PRICE_CALCULATION_FAILED"
UNSUPPORTED_EVENT_TYPE: Final = "UNSUPPORTED_EVENT_TYPE"
STORAGE_FAILURE: Final = "STORAGE_FAILURE"
INTERNAL_ERROR: Final = "INTERNAL_ERROR"
KEPT_FOR_REPRICING: Final = "KEPT_FOR_REPRICING"  # stored in the quarantine, not billed yet
STREAM_CODES: Final = (
    VALIDATION_FAILED,
    INVALID_DATA,
    INVALID_TIMESTAMP,
    PRICE_CALCULATION_FAILED,
    UNSUPPORTED_EVENT_TYPE,
    STORAGE_FAILURE,
    INTERNAL_ERROR,
    KEPT_FOR_REPRICING,
)
