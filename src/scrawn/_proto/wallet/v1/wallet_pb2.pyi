from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Balance(_message.Message):
    __slots__ = ("userId", "balance", "held", "available")
    USERID_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    userId: str
    balance: str
    held: str
    available: str
    def __init__(self, userId: _Optional[str] = ..., balance: _Optional[str] = ..., held: _Optional[str] = ..., available: _Optional[str] = ...) -> None: ...

class GetBalanceRequest(_message.Message):
    __slots__ = ("userId",)
    USERID_FIELD_NUMBER: _ClassVar[int]
    userId: str
    def __init__(self, userId: _Optional[str] = ...) -> None: ...

class CreditRequest(_message.Message):
    __slots__ = ("userId", "amount", "kind", "idempotencyKey", "description", "expiresAt")
    USERID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCYKEY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EXPIRESAT_FIELD_NUMBER: _ClassVar[int]
    userId: str
    amount: str
    kind: str
    idempotencyKey: str
    description: str
    expiresAt: int
    def __init__(self, userId: _Optional[str] = ..., amount: _Optional[str] = ..., kind: _Optional[str] = ..., idempotencyKey: _Optional[str] = ..., description: _Optional[str] = ..., expiresAt: _Optional[int] = ...) -> None: ...

class DebitRequest(_message.Message):
    __slots__ = ("userId", "amount", "idempotencyKey", "description")
    USERID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCYKEY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    userId: str
    amount: str
    idempotencyKey: str
    description: str
    def __init__(self, userId: _Optional[str] = ..., amount: _Optional[str] = ..., idempotencyKey: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class Transaction(_message.Message):
    __slots__ = ("id", "userId", "kind", "amount", "description", "eventId", "reservationId", "createdAt", "expiresAt")
    ID_FIELD_NUMBER: _ClassVar[int]
    USERID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EVENTID_FIELD_NUMBER: _ClassVar[int]
    RESERVATIONID_FIELD_NUMBER: _ClassVar[int]
    CREATEDAT_FIELD_NUMBER: _ClassVar[int]
    EXPIRESAT_FIELD_NUMBER: _ClassVar[int]
    id: str
    userId: str
    kind: str
    amount: str
    description: str
    eventId: str
    reservationId: str
    createdAt: int
    expiresAt: int
    def __init__(self, id: _Optional[str] = ..., userId: _Optional[str] = ..., kind: _Optional[str] = ..., amount: _Optional[str] = ..., description: _Optional[str] = ..., eventId: _Optional[str] = ..., reservationId: _Optional[str] = ..., createdAt: _Optional[int] = ..., expiresAt: _Optional[int] = ...) -> None: ...

class TransactionResponse(_message.Message):
    __slots__ = ("transaction", "balance", "duplicate")
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    transaction: Transaction
    balance: Balance
    duplicate: bool
    def __init__(self, transaction: _Optional[_Union[Transaction, _Mapping]] = ..., balance: _Optional[_Union[Balance, _Mapping]] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class InsufficientFunds(_message.Message):
    __slots__ = ("currentBalance", "available", "requestedAmount")
    CURRENTBALANCE_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    REQUESTEDAMOUNT_FIELD_NUMBER: _ClassVar[int]
    currentBalance: str
    available: str
    requestedAmount: str
    def __init__(self, currentBalance: _Optional[str] = ..., available: _Optional[str] = ..., requestedAmount: _Optional[str] = ...) -> None: ...

class Reservation(_message.Message):
    __slots__ = ("id", "userId", "amount", "status", "expiresAt", "createdAt", "confirmedAmount", "transactionId", "description")
    ID_FIELD_NUMBER: _ClassVar[int]
    USERID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXPIRESAT_FIELD_NUMBER: _ClassVar[int]
    CREATEDAT_FIELD_NUMBER: _ClassVar[int]
    CONFIRMEDAMOUNT_FIELD_NUMBER: _ClassVar[int]
    TRANSACTIONID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    userId: str
    amount: str
    status: str
    expiresAt: int
    createdAt: int
    confirmedAmount: str
    transactionId: str
    description: str
    def __init__(self, id: _Optional[str] = ..., userId: _Optional[str] = ..., amount: _Optional[str] = ..., status: _Optional[str] = ..., expiresAt: _Optional[int] = ..., createdAt: _Optional[int] = ..., confirmedAmount: _Optional[str] = ..., transactionId: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class CreateReservationRequest(_message.Message):
    __slots__ = ("userId", "amount", "ttlSeconds", "idempotencyKey", "description")
    USERID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    TTLSECONDS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCYKEY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    userId: str
    amount: str
    ttlSeconds: int
    idempotencyKey: str
    description: str
    def __init__(self, userId: _Optional[str] = ..., amount: _Optional[str] = ..., ttlSeconds: _Optional[int] = ..., idempotencyKey: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class ConfirmReservationRequest(_message.Message):
    __slots__ = ("reservationId", "actualAmount")
    RESERVATIONID_FIELD_NUMBER: _ClassVar[int]
    ACTUALAMOUNT_FIELD_NUMBER: _ClassVar[int]
    reservationId: str
    actualAmount: str
    def __init__(self, reservationId: _Optional[str] = ..., actualAmount: _Optional[str] = ...) -> None: ...

class ConfirmReservationResponse(_message.Message):
    __slots__ = ("reservation", "transactionId", "balance")
    RESERVATION_FIELD_NUMBER: _ClassVar[int]
    TRANSACTIONID_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    reservation: Reservation
    transactionId: str
    balance: Balance
    def __init__(self, reservation: _Optional[_Union[Reservation, _Mapping]] = ..., transactionId: _Optional[str] = ..., balance: _Optional[_Union[Balance, _Mapping]] = ...) -> None: ...

class ReservationIdRequest(_message.Message):
    __slots__ = ("reservationId",)
    RESERVATIONID_FIELD_NUMBER: _ClassVar[int]
    reservationId: str
    def __init__(self, reservationId: _Optional[str] = ...) -> None: ...

class ExtendReservationRequest(_message.Message):
    __slots__ = ("reservationId", "ttlSeconds")
    RESERVATIONID_FIELD_NUMBER: _ClassVar[int]
    TTLSECONDS_FIELD_NUMBER: _ClassVar[int]
    reservationId: str
    ttlSeconds: int
    def __init__(self, reservationId: _Optional[str] = ..., ttlSeconds: _Optional[int] = ...) -> None: ...

class ListReservationsRequest(_message.Message):
    __slots__ = ("userId", "activeOnly", "limit", "pageToken")
    USERID_FIELD_NUMBER: _ClassVar[int]
    ACTIVEONLY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGETOKEN_FIELD_NUMBER: _ClassVar[int]
    userId: str
    activeOnly: bool
    limit: int
    pageToken: str
    def __init__(self, userId: _Optional[str] = ..., activeOnly: _Optional[bool] = ..., limit: _Optional[int] = ..., pageToken: _Optional[str] = ...) -> None: ...

class ListReservationsResponse(_message.Message):
    __slots__ = ("reservations", "nextPageToken")
    RESERVATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXTPAGETOKEN_FIELD_NUMBER: _ClassVar[int]
    reservations: _containers.RepeatedCompositeFieldContainer[Reservation]
    nextPageToken: str
    def __init__(self, reservations: _Optional[_Iterable[_Union[Reservation, _Mapping]]] = ..., nextPageToken: _Optional[str] = ...) -> None: ...

class ListTransactionsRequest(_message.Message):
    __slots__ = ("userId", "limit", "pageToken")
    USERID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGETOKEN_FIELD_NUMBER: _ClassVar[int]
    userId: str
    limit: int
    pageToken: str
    def __init__(self, userId: _Optional[str] = ..., limit: _Optional[int] = ..., pageToken: _Optional[str] = ...) -> None: ...

class ListTransactionsResponse(_message.Message):
    __slots__ = ("transactions", "nextPageToken")
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXTPAGETOKEN_FIELD_NUMBER: _ClassVar[int]
    transactions: _containers.RepeatedCompositeFieldContainer[Transaction]
    nextPageToken: str
    def __init__(self, transactions: _Optional[_Iterable[_Union[Transaction, _Mapping]]] = ..., nextPageToken: _Optional[str] = ...) -> None: ...

class UserSettings(_message.Message):
    __slots__ = ("userId", "spendCap", "lowBalanceThreshold", "period", "spent", "held", "capRemaining")
    USERID_FIELD_NUMBER: _ClassVar[int]
    SPENDCAP_FIELD_NUMBER: _ClassVar[int]
    LOWBALANCETHRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    SPENT_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    CAPREMAINING_FIELD_NUMBER: _ClassVar[int]
    userId: str
    spendCap: str
    lowBalanceThreshold: str
    period: str
    spent: str
    held: str
    capRemaining: str
    def __init__(self, userId: _Optional[str] = ..., spendCap: _Optional[str] = ..., lowBalanceThreshold: _Optional[str] = ..., period: _Optional[str] = ..., spent: _Optional[str] = ..., held: _Optional[str] = ..., capRemaining: _Optional[str] = ...) -> None: ...

class GetUserSettingsRequest(_message.Message):
    __slots__ = ("userId",)
    USERID_FIELD_NUMBER: _ClassVar[int]
    userId: str
    def __init__(self, userId: _Optional[str] = ...) -> None: ...

class UpdateUserSettingsRequest(_message.Message):
    __slots__ = ("userId", "spendCap", "lowBalanceThreshold")
    USERID_FIELD_NUMBER: _ClassVar[int]
    SPENDCAP_FIELD_NUMBER: _ClassVar[int]
    LOWBALANCETHRESHOLD_FIELD_NUMBER: _ClassVar[int]
    userId: str
    spendCap: str
    lowBalanceThreshold: str
    def __init__(self, userId: _Optional[str] = ..., spendCap: _Optional[str] = ..., lowBalanceThreshold: _Optional[str] = ...) -> None: ...

class SpendCapExceeded(_message.Message):
    __slots__ = ("spendCap", "spent", "held", "requestedAmount", "period")
    SPENDCAP_FIELD_NUMBER: _ClassVar[int]
    SPENT_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    REQUESTEDAMOUNT_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    spendCap: str
    spent: str
    held: str
    requestedAmount: str
    period: str
    def __init__(self, spendCap: _Optional[str] = ..., spent: _Optional[str] = ..., held: _Optional[str] = ..., requestedAmount: _Optional[str] = ..., period: _Optional[str] = ...) -> None: ...
