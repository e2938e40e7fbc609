"""The aiortc and aioice attributes the media plane reaches into exist in the installed versions;
an upgrade that removes one fails here (and at startup) with the attribute's name."""

from __future__ import annotations

import pytest
from aiortc import RTCRtpReceiver

from livecommerce.media import aiortc_internals


async def test_installed_aiortc_and_aioice_have_every_attribute_in_use():
    # async: some aiortc objects look up the running event loop when they are made
    aiortc_internals.check()


async def test_a_removed_attribute_is_named(monkeypatch):
    monkeypatch.delattr(RTCRtpReceiver, "_send_rtcp_pli")
    with pytest.raises(aiortc_internals.IncompatibleAiortc, match=r"RTCRtpReceiver\._send_rtcp_pli"):
        aiortc_internals.check()
