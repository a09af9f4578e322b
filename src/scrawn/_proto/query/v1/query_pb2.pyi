from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Operator(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OPERATOR_UNSPECIFIED: _ClassVar[Operator]
    EQ: _ClassVar[Operator]
    GT: _ClassVar[Operator]
    GTE: _ClassVar[Operator]
    LT: _ClassVar[Operator]
    LTE: _ClassVar[Operator]
    NEQ: _ClassVar[Operator]

class Logical(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOGICAL_UNSPECIFIED: _ClassVar[Logical]
    AND: _ClassVar[Logical]
    OR: _ClassVar[Logical]

class AggregationType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGGREGATION_TYPE_UNSPECIFIED: _ClassVar[AggregationType]
    SUM: _ClassVar[AggregationType]
    COUNT: _ClassVar[AggregationType]
OPERATOR_UNSPECIFIED: Operator
EQ: Operator
GT: Operator
GTE: Operator
LT: Operator
LTE: Operator
NEQ: Operator
LOGICAL_UNSPECIFIED: Logical
AND: Logical
OR: Logical
AGGREGATION_TYPE_UNSPECIFIED: AggregationType
SUM: AggregationType
COUNT: AggregationType

class FilterCondition(_message.Message):
    __slots__ = ("field", "operator", "value")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    field: str
    operator: Operator
    value: str
    def __init__(self, field: _Optional[str] = ..., operator: _Optional[_Union[Operator, str]] = ..., value: _Optional[str] = ...) -> None: ...

class FilterGroup(_message.Message):
    __slots__ = ("logical", "conditions", "groups")
    LOGICAL_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    logical: Logical
    conditions: _containers.RepeatedCompositeFieldContainer[FilterCondition]
    groups: _containers.RepeatedCompositeFieldContainer[FilterGroup]
    def __init__(self, logical: _Optional[_Union[Logical, str]] = ..., conditions: _Optional[_Iterable[_Union[FilterCondition, _Mapping]]] = ..., groups: _Optional[_Iterable[_Union[FilterGroup, _Mapping]]] = ...) -> None: ...

class Aggregation(_message.Message):
    __slots__ = ("type", "field")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    type: AggregationType
    field: str
    def __init__(self, type: _Optional[_Union[AggregationType, str]] = ..., field: _Optional[str] = ...) -> None: ...

class GroupBy(_message.Message):
    __slots__ = ("field",)
    FIELD_FIELD_NUMBER: _ClassVar[int]
    field: str
    def __init__(self, field: _Optional[str] = ...) -> None: ...

class QueryEventsRequest(_message.Message):
    __slots__ = ("where", "aggregation", "group_by", "limit", "offset", "include_voided")
    WHERE_FIELD_NUMBER: _ClassVar[int]
    AGGREGATION_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_VOIDED_FIELD_NUMBER: _ClassVar[int]
    where: FilterGroup
    aggregation: Aggregation
    group_by: GroupBy
    limit: int
    offset: int
    include_voided: bool
    def __init__(self, where: _Optional[_Union[FilterGroup, _Mapping]] = ..., aggregation: _Optional[_Union[Aggregation, _Mapping]] = ..., group_by: _Optional[_Union[GroupBy, _Mapping]] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ..., include_voided: _Optional[bool] = ...) -> None: ...

class EventRow(_message.Message):
    __slots__ = ("event_id", "event_type", "user_id", "reported_timestamp", "ingested_timestamp", "basic_usage_type", "debit_amount", "model", "input_tokens", "output_tokens", "input_debit_amount", "output_debit_amount", "provider", "input_cache_tokens", "input_cache_debit_amount", "metadata", "debit_amount_exact", "input_debit_amount_exact", "output_debit_amount_exact", "input_cache_debit_amount_exact", "output_cache_tokens", "output_cache_debit_amount_exact", "idempotency_key", "mode", "voided_timestamp", "void_reason")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    REPORTED_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    INGESTED_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    BASIC_USAGE_TYPE_FIELD_NUMBER: _ClassVar[int]
    DEBIT_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    INPUT_DEBIT_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DEBIT_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    INPUT_CACHE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    INPUT_CACHE_DEBIT_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    DEBIT_AMOUNT_EXACT_FIELD_NUMBER: _ClassVar[int]
    INPUT_DEBIT_AMOUNT_EXACT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DEBIT_AMOUNT_EXACT_FIELD_NUMBER: _ClassVar[int]
    INPUT_CACHE_DEBIT_AMOUNT_EXACT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_CACHE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_CACHE_DEBIT_AMOUNT_EXACT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    VOIDED_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    VOID_REASON_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    event_type: str
    user_id: str
    reported_timestamp: str
    ingested_timestamp: str
    basic_usage_type: str
    debit_amount: int
    model: str
    input_tokens: int
    output_tokens: int
    input_debit_amount: int
    output_debit_amount: int
    provider: str
    input_cache_tokens: int
    input_cache_debit_amount: int
    metadata: str
    debit_amount_exact: str
    input_debit_amount_exact: str
    output_debit_amount_exact: str
    input_cache_debit_amount_exact: str
    output_cache_tokens: int
    output_cache_debit_amount_exact: str
    idempotency_key: str
    mode: str
    voided_timestamp: str
    void_reason: str
    def __init__(self, event_id: _Optional[str] = ..., event_type: _Optional[str] = ..., user_id: _Optional[str] = ..., reported_timestamp: _Optional[str] = ..., ingested_timestamp: _Optional[str] = ..., basic_usage_type: _Optional[str] = ..., debit_amount: _Optional[int] = ..., model: _Optional[str] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., input_debit_amount: _Optional[int] = ..., output_debit_amount: _Optional[int] = ..., provider: _Optional[str] = ..., input_cache_tokens: _Optional[int] = ..., input_cache_debit_amount: _Optional[int] = ..., metadata: _Optional[str] = ..., debit_amount_exact: _Optional[str] = ..., input_debit_amount_exact: _Optional[str] = ..., output_debit_amount_exact: _Optional[str] = ..., input_cache_debit_amount_exact: _Optional[str] = ..., output_cache_tokens: _Optional[int] = ..., output_cache_debit_amount_exact: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., mode: _Optional[str] = ..., voided_timestamp: _Optional[str] = ..., void_reason: _Optional[str] = ...) -> None: ...

class AggregationRow(_message.Message):
    __slots__ = ("group_value", "agg_value")
    GROUP_VALUE_FIELD_NUMBER: _ClassVar[int]
    AGG_VALUE_FIELD_NUMBER: _ClassVar[int]
    group_value: str
    agg_value: str
    def __init__(self, group_value: _Optional[str] = ..., agg_value: _Optional[str] = ...) -> None: ...

class QueryEventsResponse(_message.Message):
    __slots__ = ("rows", "agg_rows", "total")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    AGG_ROWS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[EventRow]
    agg_rows: _containers.RepeatedCompositeFieldContainer[AggregationRow]
    total: int
    def __init__(self, rows: _Optional[_Iterable[_Union[EventRow, _Mapping]]] = ..., agg_rows: _Optional[_Iterable[_Union[AggregationRow, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...
