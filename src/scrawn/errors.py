"""One error tree for the SDK and the server: every error carries an RPC code, a message, and where
known the field at fault and the request id (DESIGN §3.5). The codes' gRPC numbers and HTTP statuses are
in one table, :data:`STATUSES`; on the wire the field, the request id and the amounts travel as error
details (``google.rpc.BadRequest``, ``google.rpc.RequestInfo``, ``wallet.v1.*``, ``event.v1.*``)."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from decimal import Decimal
from typing import ClassVar

from scrawn._codes import (
    INTERNAL_ERROR,
    KEPT_FOR_REPRICING,
    STATUSES,
    STORAGE_FAILURE,
    VALIDATION_FAILED,
    Status,
)


class ScrawnError(Exception):
    """Base of every Scrawn error. ``code`` is the Connect code name (``invalid_argument``, …); its gRPC
    number and HTTP statuses are ``STATUSES[code]``."""

    code = "unknown"
    stream_code: str = INTERNAL_ERROR
    """The failure code of this error for one item of a batch call (``EventFailure.errorCode``)."""
    api_status: ClassVar[int | None] = None
    """The JSON API's HTTP status when it is not the code's own (``STATUSES[code].api_http``)."""
    retry_after: float | None = None
    """Seconds the server asked the client to wait before retrying (its ``Retry-After``), when it said."""

    def __init__(self, message: str, *, field: str | None = None, request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.request_id = request_id

    def __str__(self) -> str:
        return self.message

    @property
    def status(self) -> Status:
        """This error's row of the code table: gRPC number, Connect HTTP status, JSON API status."""
        return STATUSES.get(self.code, STATUSES["unknown"])

    @property
    def api_http_status(self) -> int:
        """The HTTP status the JSON API answers this error with."""
        return self.api_status if self.api_status is not None else self.status.api_http


class InvalidArgumentError(ScrawnError):
    code = "invalid_argument"
    stream_code = VALIDATION_FAILED


class ValidationError(InvalidArgumentError):
    """Bad input, naming the field: ``Event validation failed: userId: must be a non-empty string``."""

    def __init__(self, field: str, problem: str, *, context: str = "Validation failed") -> None:
        super().__init__(f"{context}: {field}: {problem}", field=field)
        self.problem = problem


class UnauthenticatedError(ScrawnError):
    code = "unauthenticated"


class PermissionDeniedError(ScrawnError):
    code = "permission_denied"


class NotFoundError(ScrawnError):
    code = "not_found"


class AlreadyExistsError(ScrawnError):
    code = "already_exists"
    stream_code = VALIDATION_FAILED  # an idempotency key reused for other content


class FailedPreconditionError(ScrawnError):
    code = "failed_precondition"


@dataclass(eq=False, repr=False)
class _DetailedError(FailedPreconditionError):
    """A failed precondition that carries details beyond the message: each subclass declares them as
    keyword-only fields (``None`` when the server did not send them), and the constructor is generated
    from those declarations."""

    message: str
    _: KW_ONLY
    field: str | None = None
    request_id: str | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message, field=self.field, request_id=self.request_id)


@dataclass(eq=False, repr=False, kw_only=True)
class InsufficientCreditsError(_DetailedError):
    """A wallet debit or reservation would take the user's *available* credit below zero.

    ``current_balance``, ``available`` and ``requested_amount`` are minor units (``Decimal``), read from
    the server's ``wallet.v1.InsufficientFunds`` error detail (or, failing that, from its message);
    ``None`` when the server sent neither."""

    current_balance: Decimal | None = None
    available: Decimal | None = None
    requested_amount: Decimal | None = None


@dataclass(eq=False, repr=False, kw_only=True)
class SpendCapExceededError(_DetailedError):
    """A wallet debit or reservation would pass the user's monthly spend cap. The amounts (minor units) and
    the ``period`` (``"2026-11"``, UTC) come from the server's ``wallet.v1.SpendCapExceeded`` detail."""

    spend_cap: Decimal | None = None
    spent: Decimal | None = None
    held: Decimal | None = None
    requested_amount: Decimal | None = None
    period: str | None = None


@dataclass(eq=False, repr=False, kw_only=True)
class EventQuarantinedError(_DetailedError):
    """The event is well-formed but the project's configuration cannot price it yet: the server kept it in
    its quarantine (not on the ledger) for ``scrawn events reprice``. Delivered, not lost: never retry it.
    ``reason`` is why it cannot be priced (``Tag not found: X``), from the ``event.v1.EventQuarantined``
    detail."""

    stream_code = KEPT_FOR_REPRICING

    event_id: str | None = None
    idempotency_key: str | None = None
    reason: str | None = None


class ResourceExhaustedError(ScrawnError):
    code = "resource_exhausted"


class UnavailableError(ScrawnError):
    code = "unavailable"
    stream_code = STORAGE_FAILURE  # transient: the item is retried with the same idempotency key


class DeadlineExceededError(ScrawnError):
    code = "deadline_exceeded"


class InternalError(ScrawnError):
    code = "internal"


class WebhookVerificationError(ScrawnError):
    """``verify_webhook`` refused a webhook: a header missing, a stale or future timestamp, no matching
    signature, or a body that is not a JSON event. Never raised from a server call."""

    code = "unauthenticated"


ERRORS_BY_CODE: dict[str, type[ScrawnError]] = {
    cls.code: cls
    for cls in (
        InvalidArgumentError,
        UnauthenticatedError,
        PermissionDeniedError,
        NotFoundError,
        AlreadyExistsError,
        FailedPreconditionError,
        ResourceExhaustedError,
        UnavailableError,
        DeadlineExceededError,
        InternalError,
    )
}


# ------------------------------------------------------------------------------------------------
# Codes the server never sends on purpose but a client can meet (Connect's full code list), the
# client-side transport failures, and ``from_code()`` to rebuild a typed error from the wire.


class CanceledError(ScrawnError):
    code = "canceled"


class UnknownError(ScrawnError):
    code = "unknown"


class OutOfRangeError(ScrawnError):
    code = "out_of_range"


class UnimplementedError(ScrawnError):
    code = "unimplemented"


class AbortedError(ScrawnError):
    code = "aborted"


class DataLossError(ScrawnError):
    code = "data_loss"


class ConnectionFailedError(UnavailableError):
    """The SDK could not reach the server or lost the connection mid-call (retried like UNAVAILABLE)."""


class RequestTimeoutError(DeadlineExceededError):
    """The SDK gave up waiting for the server after its ``timeout`` (retried like DEADLINE_EXCEEDED)."""


_ALL_ERRORS_BY_CODE: dict[str, type[ScrawnError]] = {
    **ERRORS_BY_CODE,
    **{
        cls.code: cls
        for cls in (
            CanceledError,
            UnknownError,
            OutOfRangeError,
            UnimplementedError,
            AbortedError,
            DataLossError,
        )
    },
}


def from_code(
    code: str, message: str, *, field: str | None = None, request_id: str | None = None
) -> ScrawnError:
    """The typed error for a Connect code name (``"invalid_argument"`` → :class:`InvalidArgumentError`);
    an unrecognised code gives :class:`UnknownError`. ``ValidationError`` is never built here: its
    constructor takes a field and a problem, and a wire error carries one message."""
    cls = _ALL_ERRORS_BY_CODE.get(code, UnknownError)
    return cls(message, field=field, request_id=request_id)
