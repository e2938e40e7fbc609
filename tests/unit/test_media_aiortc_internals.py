"""The aiortc and aioice attributes the media plane reaches into exist in the installed versions;
an upgrade that removes one fails here (and at startup) with the attribute's name."""

from __future__ import annotations

import pytest
from aioice import stun
from aioice.ice import Connection
from aiortc import RTCRtpReceiver

from livecommerce.media import aiortc_internals


async def test_installed_aiortc_and_aioice_have_every_attribute_in_use():
    # async: some aiortc objects look up the running event loop when they are made
    aiortc_internals.check()


async def test_a_removed_attribute_is_named(monkeypatch):
    monkeypatch.delattr(RTCRtpReceiver, "_send_rtcp_pli")
    with pytest.raises(aiortc_internals.IncompatibleAiortc, match=r"RTCRtpReceiver\._send_rtcp_pli"):
        aiortc_internals.check()


class _SentStun:
    """Where aioice writes its answers: the STUN messages a connection sent, and to whom."""

    def __init__(self) -> None:
        self.sent: list[tuple[object, tuple[str, int]]] = []

    def send_stun(self, message: object, addr: tuple[str, int]) -> None:
        self.sent.append((message, addr))


def _binding_request(connection: Connection) -> stun.Message:
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    request.attributes["USERNAME"] = f"{connection.local_username}:remote"
    request.attributes["PRIORITY"] = 1
    request.attributes["ICE-CONTROLLING"] = 1
    request.add_message_integrity(connection.local_password.encode("utf8"))
    return request


async def test_checks_from_addresses_outside_the_scope_are_never_answered():
    """A peer must not see a check answered on an address the server will ignore: it would
    nominate that pair and wait for media that never comes."""
    connection = Connection(ice_controlling=False)
    aiortc_internals.ignore_checks_from(connection, allowed=lambda host: host.startswith("127."))
    wire = _SentStun()
    connection.request_received(_binding_request(connection), ("10.1.2.3", 5000), wire)
    assert wire.sent == []
    connection.request_received(_binding_request(connection), ("127.0.0.1", 5000), wire)
    assert [addr for _, addr in wire.sent] == [("127.0.0.1", 5000)]
    await connection.close()
