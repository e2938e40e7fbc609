"""ICE and DTLS set-up for peer connections: the addresses to gather on and announce, the scope of
remote addresses worth checking, STUN/TURN server entries, and the DTLS role.

aioice gathers host candidates on every interface except 127.0.0.1 and offers no per-connection
choice, so `pin_gathering` is the one place that replaces a connection's gathering (through
aiortc_internals): host candidates only on the given addresses (RTC_HOST_ADDRESSES), optionally
announced as other addresses (RTC_ANNOUNCED_ADDRESSES, for a server behind 1:1 NAT). When every
host address is loopback, remote candidates (`scope_candidates`) and connectivity checks from
other addresses are ignored: a loopback socket cannot reach them, and sending there would leave
the loopback scope.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from aioice import Candidate
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection
from aiortc.sdp import SessionDescription

from livecommerce.media.aiortc_internals import (
    answer_as_dtls_server,
    gather_host_candidates_only,
    ice_connections,
    ignore_checks_from,
)


def configuration(entries: Sequence[dict[str, Any]]) -> RTCConfiguration:
    """Always explicit: aiortc's default configuration would contact a public STUN server."""
    return RTCConfiguration(iceServers=ice_servers(entries))


def ice_servers(entries: Sequence[dict[str, Any]]) -> list[RTCIceServer]:
    return [
        RTCIceServer(urls=entry["urls"], username=entry.get("username"), credential=entry.get("credential"))
        for entry in entries
    ]


def server_peer_connection() -> RTCPeerConnection:
    """A server connection. It gathers its own host candidates (RTC_HOST_ADDRESSES, announced as
    RTC_ANNOUNCED_ADDRESSES) and never through ICE_SERVERS: those are for browsers behind NAT,
    and gathering through them made every answer wait for them (5 s when one is unreachable).
    The browser's relayed or reflexive candidates still pair with the server's host ones."""
    return RTCPeerConnection(configuration([]))


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def loopback_only(host_addresses: Sequence[str]) -> bool:
    return bool(host_addresses) and all(_is_loopback(a) for a in host_addresses)


def announced_for(host_addresses: Sequence[str], announced: Sequence[str]) -> dict[str, str]:
    """Pair host and announced addresses in order; one announced address stands for them all."""
    if not announced:
        return {}
    if len(announced) == 1:
        return dict.fromkeys(host_addresses, announced[0])
    return dict(zip(host_addresses, announced, strict=False))


def pin_gathering(
    pc: RTCPeerConnection, host_addresses: Sequence[str], announced: Sequence[str] = ()
) -> None:
    """Gather host candidates only on host_addresses (empty: aioice's automatic choice).

    Call it after the transceivers exist and before setLocalDescription (which gathers).
    """
    if not host_addresses:
        return
    addresses = list(host_addresses)
    mapping = announced_for(addresses, announced)
    for connection in ice_connections(pc):
        gather_host_candidates_only(connection, addresses, mapping)
        if loopback_only(addresses):
            ignore_checks_from(connection, allowed=_is_loopback)


def scope_candidates(sdp: str, host_addresses: Sequence[str]) -> str:
    """Drop the remote description's candidates that loopback-only host addresses cannot reach
    (including mDNS `.local` names, which would otherwise be resolved by multicast)."""
    if not loopback_only(host_addresses):
        return sdp
    lines = sdp.splitlines()
    kept = [line for line in lines if not line.startswith("a=candidate:") or _candidate_in_scope(line)]
    return "\r\n".join(kept) + "\r\n"


def _candidate_in_scope(line: str) -> bool:
    try:
        return _is_loopback(Candidate.from_sdp(line.removeprefix("a=")).host)
    except (ValueError, IndexError):
        return False


def choose_dtls_role(pc: RTCPeerConnection, offer: str) -> None:
    """Answer `a=setup:actpass` offers with `a=setup:passive` (the server is the DTLS server), as
    WHIP clients such as GStreamer's expect; aiortc would answer `active`. An offer that fixes
    its role (FFmpeg's `whip` muxer offers `passive`) gets the other one, as aiortc does.
    Call it after setRemoteDescription(offer), before createAnswer."""
    roles = {
        media.rtp.muxId: media.dtls.role for media in SessionDescription.parse(offer).media if media.dtls
    }
    for transceiver in pc.getTransceivers():
        if roles.get(transceiver.mid) == "auto":
            answer_as_dtls_server(transceiver)
