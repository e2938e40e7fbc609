"""Every place where the media plane reaches into aiortc's and aioice's private attributes.

aiortc does signalling, ICE and DTLS for every peer connection, but a forwarding server needs
a few things it keeps private:
- sending: its `RTCRtpSender` runs a coroutine per packet, most of a viewer's cost; the lean send
  path (`LeanSender`) takes the SRTP session DTLS keyed, the UDP socket and address of the
  selected ICE pair, and the RTCP for the sender's SSRC;
- receiving: its `RTCRtpReceiver` starts a decoder thread per track; `EncodedFrameReceiver` takes
  the jitter buffer's encoded frames instead, from a jitter buffer that hands each frame on as
  soon as it is complete (`ForwardingJitterBuffer`), and `send_pli` asks the publisher for a
  keyframe;
- ICE and DTLS: gathering on chosen addresses only, answering as the DTLS server, and consent
  freshness that counts the peer's authenticated media (`keep_consent_while_media_flows`);
- the test and load-test viewers: datagrams before aiortc's receive path, a sender's keyframe
  requests.

`check()` verifies that the installed aiortc and aioice still have every attribute used here and
names the missing ones; the media node runs it at startup and a unit test runs it too.
pyproject.toml pins the versions this was written against.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any, Protocol

from aioice import ice as aioice_ice
from aioice import stun
from aioice.candidate import Candidate
from aioice.ice import CandidatePair, Connection
from aiortc import (
    RTCCertificate,
    RTCDtlsTransport,
    RTCIceGatherer,
    RTCIceTransport,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
)
from aiortc.clock import current_datetime
from aiortc.codecs import is_rtx
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcdtlstransport import State
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpReceiveParameters, RTCRtpSendParameters
from aiortc.rtp import (
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
)
from aiortc.stats import RTCOutboundRtpStreamStats, RTCRemoteInboundRtpStreamStats, RTCStatsReport
from pylibsrtp import Session

from livecommerce.media.rtp_leg import Endpoint, LegParameters, RtpLeg

MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"

# (what, attributes) for every private or patched attribute used below; `check` looks each one up
# on real objects. Keep it in step with the code.
_USED = {
    "RTCDtlsTransport": (
        "_state",
        "_tx_srtp",
        "_rx_srtp",
        "_register_rtp_sender",
        "_unregister_rtp_sender",
        "_register_rtp_receiver",
        "_stats_id",
        "_get_stats",
        "_set_role",
        "_handle_rtp_data",
        "_handle_rtcp_data",
    ),
    "RTCIceTransport": ("_connection",),
    "RTCIceGatherer": ("_connection",),
    "aioice Connection": (
        "_nominated",
        "_components",
        "_local_candidates",
        "_local_candidates_start",
        "_local_candidates_end",
        "_query_consent_task",
        "get_component_candidates",
        "gather_candidates",
        "request_received",
        "data_received",
        "query_consent",
        "build_request",
        "remote_password",
        "close",
    ),
    "aioice CandidatePair": ("protocol", "remote_addr"),
    "aioice module": ("CONSENT_INTERVAL", "CONSENT_FAILURES"),
    "RTCRtpReceiver": (
        "_RTCRtpReceiver__started",
        "_RTCRtpReceiver__codecs",
        "_RTCRtpReceiver__rtx_ssrc",
        "_RTCRtpReceiver__decoder_queue",
        "_RTCRtpReceiver__decoder_thread",
        "_RTCRtpReceiver__jitter_buffer",
        "_run_rtcp",
        "_send_rtcp_pli",
    ),
    "RTCRtpSender": ("_ssrc", "_rtx_ssrc", "_handle_rtcp_packet", "_send_keyframe"),
    "RTCRtpTransceiver": ("_codecs",),
    "JitterBuffer": ("_origin", "_packets", "_capacity", "_is_video", "_remove_frame", "remove"),
}


class IncompatibleAiortc(RuntimeError):
    """The installed aiortc or aioice lacks attributes the media plane relies on."""


def check() -> None:
    """Raise IncompatibleAiortc naming every attribute in use that the installed aiortc and aioice
    no longer have (looked up on real, unconnected objects, so instance attributes count). Call
    it with an event loop running: some of these objects look it up when they are made."""
    gatherer = RTCIceGatherer()
    ice_transport = RTCIceTransport(gatherer)
    dtls = RTCDtlsTransport(ice_transport, [RTCCertificate.generateCertificate()])
    receiver = RTCRtpReceiver("video", dtls)
    sender = RTCRtpSender("video", dtls)
    pair = CandidatePair(protocol=None, remote_candidate=_dummy_candidate())  # type: ignore[arg-type]
    objects: dict[str, Any] = {
        "RTCDtlsTransport": dtls,
        "RTCIceTransport": ice_transport,
        "RTCIceGatherer": gatherer,
        "aioice Connection": gatherer._connection,
        "aioice CandidatePair": pair,
        "aioice module": aioice_ice,
        "RTCRtpReceiver": receiver,
        "RTCRtpSender": sender,
        "RTCRtpTransceiver": RTCRtpTransceiver("video", receiver, sender),
        "JitterBuffer": JitterBuffer(capacity=16, is_video=True),
    }
    # the decoder queue and thread only exist once a receiver has started: `receive` sets them
    declared_only = {"_RTCRtpReceiver__decoder_queue", "_RTCRtpReceiver__decoder_thread"}
    missing = [
        f"{what}.{name}"
        for what, names in _USED.items()
        for name in names
        if name not in declared_only and not hasattr(objects[what], name)
    ]
    receive_code = RTCRtpReceiver.receive.__code__.co_names
    missing += [f"RTCRtpReceiver.{name}" for name in sorted(declared_only) if name not in receive_code]
    if missing:
        raise IncompatibleAiortc(
            "this aiortc/aioice lacks what livecommerce/media/aiortc_internals.py uses: " + ", ".join(missing)
        )


def _dummy_candidate() -> Candidate:
    return Candidate("1", 1, "udp", 1, "127.0.0.1", 9, "host")


# -- sending: the lean path ------------------------------------------------------------------------


def datagram_endpoint(dtls: RTCDtlsTransport) -> Endpoint | None:
    """The UDP transport and remote address of the nominated ICE pair, while DTLS is connected."""
    if dtls._state is not State.CONNECTED:
        return None
    pair = dtls.transport._connection._nominated.get(1)
    if pair is None:
        return None
    return pair.protocol.transport, pair.remote_addr


class LeanSender(RTCRtpSender):
    """An RTCRtpSender whose media goes out through an `RtpLeg` fed by the fanout.

    aiortc still negotiates it (SSRCs, payload types, RTX) and calls `send` once DTLS is up; instead
    of starting its RTP and RTCP coroutines, `send` hands the leg the negotiated parameters, the
    SRTP session and the socket, and registers for the RTCP that names this sender's SSRC.
    """

    leg: RtpLeg

    async def send(self, parameters: RTCRtpSendParameters) -> None:
        if self.leg.ready:
            return
        dtls = self.transport
        codec = parameters.codecs[0]
        rtx = next(
            (c for c in parameters.codecs if is_rtx(c) and c.parameters.get("apt") == codec.payloadType),
            None,
        )
        mid_id = next((e.id for e in parameters.headerExtensions if e.uri == MID_URI), None)
        params = LegParameters(
            ssrc=self._ssrc,
            payload_type=codec.payloadType,
            cname=parameters.rtcp.cname or "",
            rtx_ssrc=self._rtx_ssrc if rtx is not None else None,
            rtx_payload_type=rtx.payloadType if rtx is not None else None,
            mid=parameters.muxId or None,
            mid_extension_id=mid_id,
        )
        dtls._register_rtp_sender(self, parameters)
        self.leg.start(params, dtls._tx_srtp, lambda: datagram_endpoint(dtls))

    async def stop(self) -> None:
        self.transport._unregister_rtp_sender(self)
        self.leg.stop()

    async def _handle_rtcp_packet(self, packet: AnyRtcpPacket) -> None:
        if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
            for report in packet.reports:
                if report.ssrc == self._ssrc:
                    self.leg.receiver_report(report)
        elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            self.leg.retransmit(packet.lost)
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_FIR, RTCP_PSFB_PLI):
            self.leg.on_keyframe_request()
        # REMB is ignored: the viewer gets the publisher's bitrate, there is nothing to adapt.

    async def getStats(self) -> RTCStatsReport:
        leg, report = self.leg, RTCStatsReport()
        common = {"kind": self.kind, "transportId": self.transport._stats_id, "ssrc": self._ssrc}
        stamp = current_datetime()
        report.add(
            RTCOutboundRtpStreamStats(
                timestamp=stamp,
                type="outbound-rtp",
                id=f"outbound-rtp_{id(self)}",
                packetsSent=leg.packets_sent,
                bytesSent=leg.bytes_sent,
                trackId=str(id(leg)),
                **common,
            )
        )
        if leg.report is not None:
            report.add(
                RTCRemoteInboundRtpStreamStats(
                    timestamp=stamp,
                    type="remote-inbound-rtp",
                    id=f"remote-inbound-rtp_{id(self)}",
                    packetsReceived=max(0, leg.packets_sent - leg.report.packets_lost),
                    packetsLost=leg.report.packets_lost,
                    jitter=leg.report.jitter,
                    roundTripTime=leg.report.round_trip_time,  # type: ignore[arg-type]
                    fractionLost=leg.report.fraction_lost / 256,
                    **common,
                )
            )
        report.update(self.transport._get_stats())
        return report


def lean_sender(sender: RTCRtpSender, leg: RtpLeg) -> LeanSender:
    """Make a sender that has not started yet send through `leg`."""
    sender.__class__ = LeanSender
    assert isinstance(sender, LeanSender)
    sender.leg = leg
    return sender


# -- receiving: encoded frames without a decoder ------------------------------------------------


class FrameSink(Protocol):
    """Receives `(codec, frame)` for every complete encoded frame, then `None` when the track ends."""

    def put(self, item: tuple[RTCRtpCodecParameters, JitterFrame] | None) -> None: ...


class _NoDecoderThread:
    """Stands where aiortc keeps its decoder thread: truthy while frames should flow; join() is free."""

    def join(self) -> None:
        return None


class ForwardingJitterBuffer(JitterBuffer):
    """aiortc's jitter buffer, handing each frame on as soon as it is complete.

    aiortc's knows a video frame is complete only when the next frame's first packet arrives, one
    frame interval later (33 ms at 30 fps), and holds audio back four packets (80 ms): at every
    hop (publisher to origin, origin to edge) that would be added to the viewers' latency. Here a
    video frame ends with the packet that carries the RTP marker bit (the last packet of a frame
    for VP8, RFC 7741, and H.264, RFC 6184) once every packet before it is in; a frame whose
    marker packet never comes still ends at the next frame's first packet; each audio packet is
    a frame of its own.
    """

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        packets = []
        for count in range(self._capacity):
            packet = self._packets[(self._origin + count) % self._capacity]
            if packet is None:
                return None
            if packets and packet.timestamp != packets[0].timestamp:
                break
            packets.append(packet)
            if packet.marker or not self._is_video:
                break
        else:
            return None
        self.remove(len(packets))
        return JitterFrame(data=b"".join(packet._data for packet in packets), timestamp=packets[0].timestamp)


class EncodedFrameReceiver(RTCRtpReceiver):
    """An RTCRtpReceiver that hands the jitter buffer's encoded frames to `sink` and never decodes.

    aiortc's receiver starts a decoder thread per track and feeds decoded frames into an unbounded
    queue for a track that something must read; a forwarding server needs neither. Here the
    frames go straight to `sink.put((codec, frame))` on the event loop, and the end of the track
    (RTCP BYE, transport closed, receiver stopped) arrives as `put(None)`.
    """

    sink: FrameSink

    async def receive(self, parameters: RTCRtpReceiveParameters) -> None:
        # Mirrors RTCRtpReceiver.receive without starting the decoder thread: the receiver puts
        # `(codec, frame)` on its "decoder queue" while its "decoder thread" is set, and
        # `None` when it stops; both are ours.
        if self._RTCRtpReceiver__started:  # type: ignore[attr-defined]
            return
        codecs = self._RTCRtpReceiver__codecs  # type: ignore[attr-defined]
        for codec in parameters.codecs:
            codecs[codec.payloadType] = codec
        for encoding in parameters.encodings:
            if encoding.rtx:
                self._RTCRtpReceiver__rtx_ssrc[encoding.rtx.ssrc] = encoding.ssrc  # type: ignore[attr-defined]
        self._RTCRtpReceiver__decoder_queue = self.sink
        self._RTCRtpReceiver__decoder_thread = _NoDecoderThread()
        previous = self._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
        self._RTCRtpReceiver__jitter_buffer = ForwardingJitterBuffer(  # type: ignore[attr-defined]
            capacity=previous.capacity, is_video=previous._is_video
        )
        self.transport._register_rtp_receiver(self, parameters)
        self._RTCRtpReceiver__rtcp_task = asyncio.ensure_future(self._run_rtcp())
        self._RTCRtpReceiver__started = True


def tap(receiver: RTCRtpReceiver, sink: FrameSink) -> EncodedFrameReceiver:
    """Make a receiver that has not started yet deliver encoded frames to sink."""
    receiver.__class__ = EncodedFrameReceiver
    assert isinstance(receiver, EncodedFrameReceiver)
    receiver.sink = sink
    return receiver


async def send_pli(receiver: RTCRtpReceiver, ssrc: int) -> None:
    """Ask the sender of `ssrc` for a keyframe (RTCP Picture Loss Indication)."""
    await receiver._send_rtcp_pli(ssrc)


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    """The codecs the remote description and the transceiver's preferences have in common."""
    return transceiver._codecs


# -- ICE and DTLS --------------------------------------------------------------------------------


def ice_connections(pc: RTCPeerConnection) -> list[Connection]:
    """The aioice connections of the connection's transports (one per transport, not per track)."""
    connections: dict[int, Connection] = {}
    for transceiver in pc.getTransceivers():
        connection = transceiver.receiver.transport.transport.iceGatherer._connection
        connections[id(connection)] = connection
    return list(connections.values())


def gather_host_candidates_only(
    connection: Connection, addresses: list[str], announced: dict[str, str]
) -> None:
    """Replace the connection's gathering: host candidates on `addresses` only, each announced as
    `announced.get(address, address)`; no STUN or TURN."""

    async def gather_candidates() -> None:
        if connection._local_candidates_start:
            return
        connection._local_candidates_start = True
        for component in sorted(connection._components):
            candidates = await connection.get_component_candidates(component=component, addresses=addresses)
            for candidate in candidates:
                if candidate.type == "host" and candidate.host in announced:
                    candidate.host = announced[candidate.host]
            connection._local_candidates += candidates
        connection._local_candidates_end = True

    connection.gather_candidates = gather_candidates  # type: ignore[method-assign]


def ignore_checks_from(connection: Connection, allowed: Callable[[str], bool]) -> None:
    """Drop connectivity checks (STUN requests) from addresses that are not `allowed` before
    aioice answers them: an answered check lets the peer nominate a pair the server would then
    ignore, and the peer waits for media that never comes."""
    request_received = connection.request_received

    def received(message: Any, addr: tuple[str, int], protocol: Any) -> None:
        if allowed(addr[0]):
            request_received(message, addr, protocol)

    connection.request_received = received  # type: ignore[method-assign]


def answer_as_dtls_server(transceiver: RTCRtpTransceiver) -> None:
    """Take the DTLS server role (`a=setup:passive`) on the transceiver's transport."""
    transceiver.receiver.transport._set_role("server")


class _MediaHeard:
    """When the peer's last authenticated SRTP or SRTCP packet arrived."""

    def __init__(self) -> None:
        self.at = -1e9

    def within(self, seconds: float) -> bool:
        return time.monotonic() - self.at <= seconds


def keep_consent_while_media_flows(pc: RTCPeerConnection) -> None:
    """RFC 7675 consent freshness in which authenticated media from the peer also counts as
    consent: a consent check that goes unanswered is forgiven when an SRTP or SRTCP packet that
    passed authentication with this connection's DTLS keys arrived within the last check interval.
    Some WHIP clients (FFmpeg 8) stop answering consent checks once they stream, and aioice would
    otherwise close their connection after 30 s. Call it after the transceivers exist, before
    the connection starts (setLocalDescription)."""
    transports = {id(t.receiver.transport): t.receiver.transport for t in pc.getTransceivers()}
    for dtls in transports.values():
        heard = _MediaHeard()
        _note_authenticated_media(dtls, heard)
        connection = dtls.transport._connection
        connection.query_consent = lambda c=connection, h=heard: _query_consent(c, h)  # type: ignore[method-assign]


def _note_authenticated_media(dtls: RTCDtlsTransport, heard: _MediaHeard) -> None:
    # aiortc calls these only with packets that SRTP authenticated and decrypted
    handle_rtp, handle_rtcp = dtls._handle_rtp_data, dtls._handle_rtcp_data

    async def rtp(data: bytes, arrival_time_ms: int) -> None:
        heard.at = time.monotonic()
        await handle_rtp(data, arrival_time_ms)

    async def rtcp(data: bytes) -> None:
        heard.at = time.monotonic()
        await handle_rtcp(data)

    dtls._handle_rtp_data = rtp  # type: ignore[method-assign]
    dtls._handle_rtcp_data = rtcp  # type: ignore[method-assign]


async def _query_consent(connection: Connection, heard: _MediaHeard) -> None:
    """aioice's consent loop (a check every 5 s ±20 %, expiry after 6 failures in a row), except
    that a failed check is forgiven while the peer's authenticated media keeps arriving."""
    assert connection.remote_password is not None
    interval = aioice_ice.CONSENT_INTERVAL
    failures = 0
    while True:
        await asyncio.sleep(interval * (0.8 + 0.4 * random.random()))
        for pair in connection._nominated.values():
            request = connection.build_request(pair, nominate=False)
            try:
                await pair.protocol.request(
                    request,
                    pair.remote_addr,
                    integrity_key=connection.remote_password.encode("utf8"),
                    retransmissions=0,
                )
                failures = 0
            except stun.TransactionError:
                failures = 0 if heard.within(interval * 1.2) else failures + 1
        if failures >= aioice_ice.CONSENT_FAILURES:
            connection._query_consent_task = None
            await connection.close()
            return


# -- the receiving end, for test and load-test clients -------------------------------------------


def on_datagrams(pc: RTCPeerConnection, hook: Callable[[bytes], bool]) -> None:
    """Show every datagram the connection receives to `hook` first; True means it took it (aiortc
    never sees it). Call after the remote description is set (BUNDLE has chosen the transport)."""
    connections = {
        id(t.receiver.transport): t.receiver.transport.transport._connection for t in pc.getTransceivers()
    }
    for connection in connections.values():
        deliver = connection.data_received

        def received(data: bytes, component: int, _deliver: Callable[[bytes, int], None] = deliver) -> None:
            if not hook(data):
                _deliver(data, component)

        connection.data_received = received


def receiving_srtp(pc: RTCPeerConnection) -> Session | None:
    """The connection's inbound SRTP session, once DTLS has keyed it."""
    transceivers = pc.getTransceivers()
    return transceivers[0].receiver.transport._rx_srtp if transceivers else None


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call `callback` when the remote end asks this sender for a keyframe (PLI or FIR); aiortc
    would flag its own encoder, which a sender of pre-encoded packets does not use."""
    sender._send_keyframe = callback  # type: ignore[method-assign]
