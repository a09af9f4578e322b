"""A project with no payment provider: CreateCheckoutLink answers FAILED_PRECONDITION on every protocol."""

from __future__ import annotations

import pytest

from scrawn._proto.payment.v1 import payment_pb2 as pb
from tests.clients import RpcError, all_clients, bearer

CHECKOUT = "/payment.v1.PaymentService/CreateCheckoutLink"


def test_checkout_without_a_provider_says_what_is_missing(module_server) -> None:
    for client in all_clients(module_server):
        with client:
            with pytest.raises(RpcError) as err:
                client.unary(
                    CHECKOUT, pb.CreateCheckoutLinkRequest(userId="u"), bearer(module_server.live_key)
                )
            assert err.value.code == "failed_precondition", type(client)
            assert "No payment provider is configured" in err.value.message
            with pytest.raises(RpcError) as bad:
                client.unary(
                    CHECKOUT, pb.CreateCheckoutLinkRequest(userId=""), bearer(module_server.live_key)
                )
            assert bad.value.code == "invalid_argument" and "userId" in bad.value.message
            with pytest.raises(RpcError) as dash:
                client.unary(
                    CHECKOUT, pb.CreateCheckoutLinkRequest(userId="u"), bearer(module_server.dash_key)
                )
            assert dash.value.code == "permission_denied"
