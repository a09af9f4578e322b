from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class CreateCheckoutLinkRequest(_message.Message):
    __slots__ = ("userId", "topUpAmount", "returnUrl")
    USERID_FIELD_NUMBER: _ClassVar[int]
    TOPUPAMOUNT_FIELD_NUMBER: _ClassVar[int]
    RETURNURL_FIELD_NUMBER: _ClassVar[int]
    userId: str
    topUpAmount: str
    returnUrl: str
    def __init__(self, userId: _Optional[str] = ..., topUpAmount: _Optional[str] = ..., returnUrl: _Optional[str] = ...) -> None: ...

class CreateCheckoutLinkResponse(_message.Message):
    __slots__ = ("checkoutLink",)
    CHECKOUTLINK_FIELD_NUMBER: _ClassVar[int]
    checkoutLink: str
    def __init__(self, checkoutLink: _Optional[str] = ...) -> None: ...

class CreatePortalLinkRequest(_message.Message):
    __slots__ = ("userId", "returnUrl", "expiresIn")
    USERID_FIELD_NUMBER: _ClassVar[int]
    RETURNURL_FIELD_NUMBER: _ClassVar[int]
    EXPIRESIN_FIELD_NUMBER: _ClassVar[int]
    userId: str
    returnUrl: str
    expiresIn: int
    def __init__(self, userId: _Optional[str] = ..., returnUrl: _Optional[str] = ..., expiresIn: _Optional[int] = ...) -> None: ...

class CreatePortalLinkResponse(_message.Message):
    __slots__ = ("url", "expiresAt")
    URL_FIELD_NUMBER: _ClassVar[int]
    EXPIRESAT_FIELD_NUMBER: _ClassVar[int]
    url: str
    expiresAt: int
    def __init__(self, url: _Optional[str] = ..., expiresAt: _Optional[int] = ...) -> None: ...
