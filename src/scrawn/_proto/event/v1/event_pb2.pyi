from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    BASIC_USAGE: _ClassVar[EventType]
    AI_TOKEN_USAGE: _ClassVar[EventType]

class BasicUsageType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BASIC_USAGE_TYPE_UNSPECIFIED: _ClassVar[BasicUsageType]
    RAW: _ClassVar[BasicUsageType]
    MIDDLEWARE_CALL: _ClassVar[BasicUsageType]
EVENT_TYPE_UNSPECIFIED: EventType
BASIC_USAGE: EventType
AI_TOKEN_USAGE: EventType
BASIC_USAGE_TYPE_UNSPECIFIED: BasicUsageType
RAW: BasicUsageType
MIDDLEWARE_CALL: BasicUsageType

class BasicUsage(_message.Message):
    __slots__ = ("basicUsageType", "amount", "tag", "expr", "metadata")
    BASICUSAGETYPE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    EXPR_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    basicUsageType: BasicUsageType
    amount: int
    tag: str
    expr: str
    metadata: str
    def __init__(self, basicUsageType: _Optional[_Union[BasicUsageType, str]] = ..., amount: _Optional[int] = ..., tag: _Optional[str] = ..., expr: _Optional[str] = ..., metadata: _Optional[str] = ...) -> None: ...

class RegisterEventRequest(_message.Message):
    __slots__ = ("type", "userId", "reportedTimestamp", "basicUsage", "eventId", "idempotencyKey")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    USERID_FIELD_NUMBER: _ClassVar[int]
    REPORTEDTIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    BASICUSAGE_FIELD_NUMBER: _ClassVar[int]
    EVENTID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCYKEY_FIELD_NUMBER: _ClassVar[int]
    type: EventType
    userId: str
    reportedTimestamp: int
    basicUsage: BasicUsage
    eventId: str
    idempotencyKey: str
    def __init__(self, type: _Optional[_Union[EventType, str]] = ..., userId: _Optional[str] = ..., reportedTimestamp: _Optional[int] = ..., basicUsage: _Optional[_Union[BasicUsage, _Mapping]] = ..., eventId: _Optional[str] = ..., idempotencyKey: _Optional[str] = ...) -> None: ...

class RegisterEventResponse(_message.Message):
    __slots__ = ("eventId", "idempotencyKey", "ingestedTimestamp", "eventType", "userId", "message", "duplicate")
    EVENTID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCYKEY_FIELD_NUMBER: _ClassVar[int]
    INGESTEDTIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    EVENTTYPE_FIELD_NUMBER: _ClassVar[int]
    USERID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    eventId: str
    idempotencyKey: str
    ingestedTimestamp: int
    eventType: str
    userId: str
    message: str
    duplicate: bool
    def __init__(self, eventId: _Optional[str] = ..., idempotencyKey: _Optional[str] = ..., ingestedTimestamp: _Optional[int] = ..., eventType: _Optional[str] = ..., userId: _Optional[str] = ..., message: _Optional[str] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class AITokenUsage(_message.Message):
    __slots__ = ("model", "inputTokens", "outputTokens", "inputAmount", "inputTag", "inputExpr", "outputAmount", "outputTag", "outputExpr", "provider", "inputCacheTokens", "inputCacheAmount", "inputCacheTag", "inputCacheExpr", "metadata", "outputCacheTokens", "outputCacheAmount", "outputCacheTag", "outputCacheExpr")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUTTOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTTOKENS_FIELD_NUMBER: _ClassVar[int]
    INPUTAMOUNT_FIELD_NUMBER: _ClassVar[int]
    INPUTTAG_FIELD_NUMBER: _ClassVar[int]
    INPUTEXPR_FIELD_NUMBER: _ClassVar[int]
    OUTPUTAMOUNT_FIELD_NUMBER: _ClassVar[int]
    OUTPUTTAG_FIELD_NUMBER: _ClassVar[int]
    OUTPUTEXPR_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    INPUTCACHETOKENS_FIELD_NUMBER: _ClassVar[int]
    INPUTCACHEAMOUNT_FIELD_NUMBER: _ClassVar[int]
    INPUTCACHETAG_FIELD_NUMBER: _ClassVar[int]
    INPUTCACHEEXPR_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    OUTPUTCACHETOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTCACHEAMOUNT_FIELD_NUMBER: _ClassVar[int]
    OUTPUTCACHETAG_FIELD_NUMBER: _ClassVar[int]
    OUTPUTCACHEEXPR_FIELD_NUMBER: _ClassVar[int]
    model: str
    inputTokens: int
    outputTokens: int
    inputAmount: int
    inputTag: str
    inputExpr: str
    outputAmount: int
    outputTag: str
    outputExpr: str
    provider: str
    inputCacheTokens: int
    inputCacheAmount: int
    inputCacheTag: str
    inputCacheExpr: str
    metadata: str
    outputCacheTokens: int
    outputCacheAmount: int
    outputCacheTag: str
    outputCacheExpr: str
    def __init__(self, model: _Optional[str] = ..., inputTokens: _Optional[int] = ..., outputTokens: _Optional[int] = ..., inputAmount: _Optional[int] = ..., inputTag: _Optional[str] = ..., inputExpr: _Optional[str] = ..., outputAmount: _Optional[int] = ..., outputTag: _Optional[str] = ..., outputExpr: _Optional[str] = ..., provider: _Optional[str] = ..., inputCacheTokens: _Optional[int] = ..., inputCacheAmount: _Optional[int] = ..., inputCacheTag: _Optional[str] = ..., inputCacheExpr: _Optional[str] = ..., metadata: _Optional[str] = ..., outputCacheTokens: _Optional[int] = ..., outputCacheAmount: _Optional[int] = ..., outputCacheTag: _Optional[str] = ..., outputCacheExpr: _Optional[str] = ...) -> None: ...

class StreamEventRequest(_message.Message):
    __slots__ = ("type", "userId", "reportedTimestamp", "basicUsage", "aiTokenUsage", "eventId", "idempotencyKey")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    USERID_FIELD_NUMBER: _ClassVar[int]
    REPORTEDTIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    BASICUSAGE_FIELD_NUMBER: _ClassVar[int]
    AITOKENUSAGE_FIELD_NUMBER: _ClassVar[int]
    EVENTID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCYKEY_FIELD_NUMBER: _ClassVar[int]
    type: EventType
    userId: str
    reportedTimestamp: int
    basicUsage: BasicUsage
    aiTokenUsage: AITokenUsage
    eventId: str
    idempotencyKey: str
    def __init__(self, type: _Optional[_Union[EventType, str]] = ..., userId: _Optional[str] = ..., reportedTimestamp: _Optional[int] = ..., basicUsage: _Optional[_Union[BasicUsage, _Mapping]] = ..., aiTokenUsage: _Optional[_Union[AITokenUsage, _Mapping]] = ..., eventId: _Optional[str] = ..., idempotencyKey: _Optional[str] = ...) -> None: ...

class EventFailure(_message.Message):
    __slots__ = ("eventIndex", "idempotencyKey", "errorCode", "message", "field")
    EVENTINDEX_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCYKEY_FIELD_NUMBER: _ClassVar[int]
    ERRORCODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    eventIndex: int
    idempotencyKey: str
    errorCode: str
    message: str
    field: str
    def __init__(self, eventIndex: _Optional[int] = ..., idempotencyKey: _Optional[str] = ..., errorCode: _Optional[str] = ..., message: _Optional[str] = ..., field: _Optional[str] = ...) -> None: ...

class StreamEventResponse(_message.Message):
    __slots__ = ("eventsProcessed", "message", "eventsFailed", "failures", "duplicates", "quarantined")
    EVENTSPROCESSED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EVENTSFAILED_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    QUARANTINED_FIELD_NUMBER: _ClassVar[int]
    eventsProcessed: int
    message: str
    eventsFailed: int
    failures: _containers.RepeatedCompositeFieldContainer[EventFailure]
    duplicates: int
    quarantined: int
    def __init__(self, eventsProcessed: _Optional[int] = ..., message: _Optional[str] = ..., eventsFailed: _Optional[int] = ..., failures: _Optional[_Iterable[_Union[EventFailure, _Mapping]]] = ..., duplicates: _Optional[int] = ..., quarantined: _Optional[int] = ...) -> None: ...

class EventQuarantined(_message.Message):
    __slots__ = ("eventId", "idempotencyKey", "field", "reason")
    EVENTID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCYKEY_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    eventId: str
    idempotencyKey: str
    field: str
    reason: str
    def __init__(self, eventId: _Optional[str] = ..., idempotencyKey: _Optional[str] = ..., field: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class VoidEventRequest(_message.Message):
    __slots__ = ("eventId", "idempotencyKey", "reason")
    EVENTID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCYKEY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    eventId: str
    idempotencyKey: str
    reason: str
    def __init__(self, eventId: _Optional[str] = ..., idempotencyKey: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class VoidEventResponse(_message.Message):
    __slots__ = ("eventId", "idempotencyKey", "userId", "amount", "voidedTimestamp", "voidedBy", "reason", "alreadyVoided", "reversalEntryId")
    EVENTID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCYKEY_FIELD_NUMBER: _ClassVar[int]
    USERID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    VOIDEDTIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    VOIDEDBY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ALREADYVOIDED_FIELD_NUMBER: _ClassVar[int]
    REVERSALENTRYID_FIELD_NUMBER: _ClassVar[int]
    eventId: str
    idempotencyKey: str
    userId: str
    amount: str
    voidedTimestamp: int
    voidedBy: str
    reason: str
    alreadyVoided: bool
    reversalEntryId: str
    def __init__(self, eventId: _Optional[str] = ..., idempotencyKey: _Optional[str] = ..., userId: _Optional[str] = ..., amount: _Optional[str] = ..., voidedTimestamp: _Optional[int] = ..., voidedBy: _Optional[str] = ..., reason: _Optional[str] = ..., alreadyVoided: _Optional[bool] = ..., reversalEntryId: _Optional[str] = ...) -> None: ...
