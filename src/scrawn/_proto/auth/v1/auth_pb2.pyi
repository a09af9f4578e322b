from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class CreateAPIKeyRequest(_message.Message):
    __slots__ = ("name", "expiresIn")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXPIRESIN_FIELD_NUMBER: _ClassVar[int]
    name: str
    expiresIn: int
    def __init__(self, name: _Optional[str] = ..., expiresIn: _Optional[int] = ...) -> None: ...

class CreateAPIKeyResponse(_message.Message):
    __slots__ = ("apiKeyId", "apiKey", "name", "createdAt", "expiresAt")
    APIKEYID_FIELD_NUMBER: _ClassVar[int]
    APIKEY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATEDAT_FIELD_NUMBER: _ClassVar[int]
    EXPIRESAT_FIELD_NUMBER: _ClassVar[int]
    apiKeyId: str
    apiKey: str
    name: str
    createdAt: str
    expiresAt: str
    def __init__(self, apiKeyId: _Optional[str] = ..., apiKey: _Optional[str] = ..., name: _Optional[str] = ..., createdAt: _Optional[str] = ..., expiresAt: _Optional[str] = ...) -> None: ...
