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
