from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrackedEvent(_message.Message):
    __slots__ = ("type", "userId", "quantity", "productRef", "metadata", "idempotencyKey", "eventId", "timestamp")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    USERID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    PRODUCTREF_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCYKEY_FIELD_NUMBER: _ClassVar[int]
    EVENTID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    type: str
    userId: str
    quantity: str
    productRef: str
    metadata: str
    idempotencyKey: str
    eventId: str
    timestamp: int
    def __init__(self, type: _Optional[str] = ..., userId: _Optional[str] = ..., quantity: _Optional[str] = ..., productRef: _Optional[str] = ..., metadata: _Optional[str] = ..., idempotencyKey: _Optional[str] = ..., eventId: _Optional[str] = ..., timestamp: _Optional[int] = ...) -> None: ...

class TrackEventsRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[TrackedEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[TrackedEvent, _Mapping]]] = ...) -> None: ...

class TrackEventResult(_message.Message):
    __slots__ = ("index", "status", "eventId", "idempotencyKey", "amount", "errorCode", "message", "field")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EVENTID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCYKEY_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    ERRORCODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    index: int
    status: str
    eventId: str
    idempotencyKey: str
    amount: str
    errorCode: str
    message: str
    field: str
    def __init__(self, index: _Optional[int] = ..., status: _Optional[str] = ..., eventId: _Optional[str] = ..., idempotencyKey: _Optional[str] = ..., amount: _Optional[str] = ..., errorCode: _Optional[str] = ..., message: _Optional[str] = ..., field: _Optional[str] = ...) -> None: ...

class TrackEventsResponse(_message.Message):
    __slots__ = ("results", "accepted", "duplicates", "failed", "quarantined")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    QUARANTINED_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[TrackEventResult]
    accepted: int
    duplicates: int
    failed: int
    quarantined: int
    def __init__(self, results: _Optional[_Iterable[_Union[TrackEventResult, _Mapping]]] = ..., accepted: _Optional[int] = ..., duplicates: _Optional[int] = ..., failed: _Optional[int] = ..., quarantined: _Optional[int] = ...) -> None: ...

class ModelPrice(_message.Message):
    __slots__ = ("model", "provider", "name", "source", "inputPerMillion", "outputPerMillion", "cachedInputPerMillion", "cacheWritePerMillion", "audioPerMinute", "tiered", "overrideId", "effectiveFrom", "inForce")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    INPUTPERMILLION_FIELD_NUMBER: _ClassVar[int]
    OUTPUTPERMILLION_FIELD_NUMBER: _ClassVar[int]
    CACHEDINPUTPERMILLION_FIELD_NUMBER: _ClassVar[int]
    CACHEWRITEPERMILLION_FIELD_NUMBER: _ClassVar[int]
    AUDIOPERMINUTE_FIELD_NUMBER: _ClassVar[int]
    TIERED_FIELD_NUMBER: _ClassVar[int]
    OVERRIDEID_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVEFROM_FIELD_NUMBER: _ClassVar[int]
    INFORCE_FIELD_NUMBER: _ClassVar[int]
    model: str
    provider: str
    name: str
    source: str
    inputPerMillion: str
    outputPerMillion: str
    cachedInputPerMillion: str
    cacheWritePerMillion: str
    audioPerMinute: str
    tiered: bool
    overrideId: str
    effectiveFrom: int
    inForce: bool
    def __init__(self, model: _Optional[str] = ..., provider: _Optional[str] = ..., name: _Optional[str] = ..., source: _Optional[str] = ..., inputPerMillion: _Optional[str] = ..., outputPerMillion: _Optional[str] = ..., cachedInputPerMillion: _Optional[str] = ..., cacheWritePerMillion: _Optional[str] = ..., audioPerMinute: _Optional[str] = ..., tiered: _Optional[bool] = ..., overrideId: _Optional[str] = ..., effectiveFrom: _Optional[int] = ..., inForce: _Optional[bool] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("provider", "search", "at", "limit", "pageToken")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    SEARCH_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGETOKEN_FIELD_NUMBER: _ClassVar[int]
    provider: str
    search: str
    at: int
    limit: int
    pageToken: str
    def __init__(self, provider: _Optional[str] = ..., search: _Optional[str] = ..., at: _Optional[int] = ..., limit: _Optional[int] = ..., pageToken: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "nextPageToken", "priceBook")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    NEXTPAGETOKEN_FIELD_NUMBER: _ClassVar[int]
    PRICEBOOK_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelPrice]
    nextPageToken: str
    priceBook: str
    def __init__(self, models: _Optional[_Iterable[_Union[ModelPrice, _Mapping]]] = ..., nextPageToken: _Optional[str] = ..., priceBook: _Optional[str] = ...) -> None: ...

class CostBreakdown(_message.Message):
    __slots__ = ("input", "output", "cachedInput", "cacheWrite", "audio", "total", "currency", "model", "provider", "source", "overrideId", "priceBook")
    INPUT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    CACHEDINPUT_FIELD_NUMBER: _ClassVar[int]
    CACHEWRITE_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    OVERRIDEID_FIELD_NUMBER: _ClassVar[int]
    PRICEBOOK_FIELD_NUMBER: _ClassVar[int]
    input: str
    output: str
    cachedInput: str
    cacheWrite: str
    audio: str
    total: str
    currency: str
    model: str
    provider: str
    source: str
    overrideId: str
    priceBook: str
    def __init__(self, input: _Optional[str] = ..., output: _Optional[str] = ..., cachedInput: _Optional[str] = ..., cacheWrite: _Optional[str] = ..., audio: _Optional[str] = ..., total: _Optional[str] = ..., currency: _Optional[str] = ..., model: _Optional[str] = ..., provider: _Optional[str] = ..., source: _Optional[str] = ..., overrideId: _Optional[str] = ..., priceBook: _Optional[str] = ...) -> None: ...

class CalculateCostRequest(_message.Message):
    __slots__ = ("model", "provider", "usageType", "inputTokens", "outputTokens", "cachedTokens", "cacheWriteTokens", "audioSeconds", "timestamp")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    USAGETYPE_FIELD_NUMBER: _ClassVar[int]
    INPUTTOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTTOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHEDTOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHEWRITETOKENS_FIELD_NUMBER: _ClassVar[int]
    AUDIOSECONDS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    model: str
    provider: str
    usageType: str
    inputTokens: int
    outputTokens: int
    cachedTokens: int
    cacheWriteTokens: int
    audioSeconds: str
    timestamp: int
    def __init__(self, model: _Optional[str] = ..., provider: _Optional[str] = ..., usageType: _Optional[str] = ..., inputTokens: _Optional[int] = ..., outputTokens: _Optional[int] = ..., cachedTokens: _Optional[int] = ..., cacheWriteTokens: _Optional[int] = ..., audioSeconds: _Optional[str] = ..., timestamp: _Optional[int] = ...) -> None: ...

class CalculateCostResponse(_message.Message):
    __slots__ = ("cost",)
    COST_FIELD_NUMBER: _ClassVar[int]
    cost: CostBreakdown
    def __init__(self, cost: _Optional[_Union[CostBreakdown, _Mapping]] = ...) -> None: ...

class RecordUsageRequest(_message.Message):
    __slots__ = ("userId", "context", "transactionId", "model", "provider", "usageType", "inputTokens", "outputTokens", "cachedTokens", "cacheWriteTokens", "audioSeconds", "description", "idempotencyKey", "timestamp")
    USERID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    TRANSACTIONID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    USAGETYPE_FIELD_NUMBER: _ClassVar[int]
    INPUTTOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTTOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHEDTOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHEWRITETOKENS_FIELD_NUMBER: _ClassVar[int]
    AUDIOSECONDS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCYKEY_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    userId: str
    context: str
    transactionId: str
    model: str
    provider: str
    usageType: str
    inputTokens: int
    outputTokens: int
    cachedTokens: int
    cacheWriteTokens: int
    audioSeconds: str
    description: str
    idempotencyKey: str
    timestamp: int
    def __init__(self, userId: _Optional[str] = ..., context: _Optional[str] = ..., transactionId: _Optional[str] = ..., model: _Optional[str] = ..., provider: _Optional[str] = ..., usageType: _Optional[str] = ..., inputTokens: _Optional[int] = ..., outputTokens: _Optional[int] = ..., cachedTokens: _Optional[int] = ..., cacheWriteTokens: _Optional[int] = ..., audioSeconds: _Optional[str] = ..., description: _Optional[str] = ..., idempotencyKey: _Optional[str] = ..., timestamp: _Optional[int] = ...) -> None: ...

class UsageRecord(_message.Message):
    __slots__ = ("id", "userId", "context", "transactionId", "reservationId", "model", "provider", "usageType", "inputTokens", "outputTokens", "cachedTokens", "cacheWriteTokens", "audioSeconds", "cost", "description", "idempotencyKey", "timestamp", "createdAt")
    ID_FIELD_NUMBER: _ClassVar[int]
    USERID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    TRANSACTIONID_FIELD_NUMBER: _ClassVar[int]
    RESERVATIONID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    USAGETYPE_FIELD_NUMBER: _ClassVar[int]
    INPUTTOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTTOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHEDTOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHEWRITETOKENS_FIELD_NUMBER: _ClassVar[int]
    AUDIOSECONDS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCYKEY_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    CREATEDAT_FIELD_NUMBER: _ClassVar[int]
    id: str
    userId: str
    context: str
    transactionId: str
    reservationId: str
    model: str
    provider: str
    usageType: str
    inputTokens: int
    outputTokens: int
    cachedTokens: int
    cacheWriteTokens: int
    audioSeconds: str
    cost: CostBreakdown
    description: str
    idempotencyKey: str
    timestamp: int
    createdAt: int
    def __init__(self, id: _Optional[str] = ..., userId: _Optional[str] = ..., context: _Optional[str] = ..., transactionId: _Optional[str] = ..., reservationId: _Optional[str] = ..., model: _Optional[str] = ..., provider: _Optional[str] = ..., usageType: _Optional[str] = ..., inputTokens: _Optional[int] = ..., outputTokens: _Optional[int] = ..., cachedTokens: _Optional[int] = ..., cacheWriteTokens: _Optional[int] = ..., audioSeconds: _Optional[str] = ..., cost: _Optional[_Union[CostBreakdown, _Mapping]] = ..., description: _Optional[str] = ..., idempotencyKey: _Optional[str] = ..., timestamp: _Optional[int] = ..., createdAt: _Optional[int] = ...) -> None: ...

class RecordUsageResponse(_message.Message):
    __slots__ = ("record", "duplicate")
    RECORD_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    record: UsageRecord
    duplicate: bool
    def __init__(self, record: _Optional[_Union[UsageRecord, _Mapping]] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class UsageFilter(_message.Message):
    __slots__ = ("userId", "context", "model", "usageType", "startTime", "endTime", "transactionId")
    USERID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    USAGETYPE_FIELD_NUMBER: _ClassVar[int]
    STARTTIME_FIELD_NUMBER: _ClassVar[int]
    ENDTIME_FIELD_NUMBER: _ClassVar[int]
    TRANSACTIONID_FIELD_NUMBER: _ClassVar[int]
    userId: str
    context: str
    model: str
    usageType: str
    startTime: int
    endTime: int
    transactionId: str
    def __init__(self, userId: _Optional[str] = ..., context: _Optional[str] = ..., model: _Optional[str] = ..., usageType: _Optional[str] = ..., startTime: _Optional[int] = ..., endTime: _Optional[int] = ..., transactionId: _Optional[str] = ...) -> None: ...

class UsageTotals(_message.Message):
    __slots__ = ("cost", "records", "inputTokens", "outputTokens", "cachedTokens", "cacheWriteTokens", "audioSeconds")
    COST_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    INPUTTOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTTOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHEDTOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHEWRITETOKENS_FIELD_NUMBER: _ClassVar[int]
    AUDIOSECONDS_FIELD_NUMBER: _ClassVar[int]
    cost: str
    records: int
    inputTokens: int
    outputTokens: int
    cachedTokens: int
    cacheWriteTokens: int
    audioSeconds: str
    def __init__(self, cost: _Optional[str] = ..., records: _Optional[int] = ..., inputTokens: _Optional[int] = ..., outputTokens: _Optional[int] = ..., cachedTokens: _Optional[int] = ..., cacheWriteTokens: _Optional[int] = ..., audioSeconds: _Optional[str] = ...) -> None: ...

class UsageGroup(_message.Message):
    __slots__ = ("key", "totals")
    KEY_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    key: str
    totals: UsageTotals
    def __init__(self, key: _Optional[str] = ..., totals: _Optional[_Union[UsageTotals, _Mapping]] = ...) -> None: ...

class UsageSummary(_message.Message):
    __slots__ = ("totals", "byModel", "byContext")
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    BYMODEL_FIELD_NUMBER: _ClassVar[int]
    BYCONTEXT_FIELD_NUMBER: _ClassVar[int]
    totals: UsageTotals
    byModel: _containers.RepeatedCompositeFieldContainer[UsageGroup]
    byContext: _containers.RepeatedCompositeFieldContainer[UsageGroup]
    def __init__(self, totals: _Optional[_Union[UsageTotals, _Mapping]] = ..., byModel: _Optional[_Iterable[_Union[UsageGroup, _Mapping]]] = ..., byContext: _Optional[_Iterable[_Union[UsageGroup, _Mapping]]] = ...) -> None: ...

class GetUsageRequest(_message.Message):
    __slots__ = ("filter", "summary", "limit", "pageToken")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGETOKEN_FIELD_NUMBER: _ClassVar[int]
    filter: UsageFilter
    summary: bool
    limit: int
    pageToken: str
    def __init__(self, filter: _Optional[_Union[UsageFilter, _Mapping]] = ..., summary: _Optional[bool] = ..., limit: _Optional[int] = ..., pageToken: _Optional[str] = ...) -> None: ...

class GetUsageResponse(_message.Message):
    __slots__ = ("records", "nextPageToken", "summary")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    NEXTPAGETOKEN_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[UsageRecord]
    nextPageToken: str
    summary: UsageSummary
    def __init__(self, records: _Optional[_Iterable[_Union[UsageRecord, _Mapping]]] = ..., nextPageToken: _Optional[str] = ..., summary: _Optional[_Union[UsageSummary, _Mapping]] = ...) -> None: ...

class GetUsageSummaryRequest(_message.Message):
    __slots__ = ("filter",)
    FILTER_FIELD_NUMBER: _ClassVar[int]
    filter: UsageFilter
    def __init__(self, filter: _Optional[_Union[UsageFilter, _Mapping]] = ...) -> None: ...

class GetUsageSeriesRequest(_message.Message):
    __slots__ = ("filter", "bucket", "timeZone")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    filter: UsageFilter
    bucket: str
    timeZone: str
    def __init__(self, filter: _Optional[_Union[UsageFilter, _Mapping]] = ..., bucket: _Optional[str] = ..., timeZone: _Optional[str] = ...) -> None: ...

class UsageBucket(_message.Message):
    __slots__ = ("start", "startTime", "endTime", "totals")
    START_FIELD_NUMBER: _ClassVar[int]
    STARTTIME_FIELD_NUMBER: _ClassVar[int]
    ENDTIME_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    start: str
    startTime: int
    endTime: int
    totals: UsageTotals
    def __init__(self, start: _Optional[str] = ..., startTime: _Optional[int] = ..., endTime: _Optional[int] = ..., totals: _Optional[_Union[UsageTotals, _Mapping]] = ...) -> None: ...

class GetUsageSeriesResponse(_message.Message):
    __slots__ = ("buckets", "bucket", "timeZone")
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    buckets: _containers.RepeatedCompositeFieldContainer[UsageBucket]
    bucket: str
    timeZone: str
    def __init__(self, buckets: _Optional[_Iterable[_Union[UsageBucket, _Mapping]]] = ..., bucket: _Optional[str] = ..., timeZone: _Optional[str] = ...) -> None: ...
