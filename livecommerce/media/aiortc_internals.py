"""The few places where the media plane reaches into aiortc and aioice.

aiortc does signalling, ICE and DTLS for every peer connection, but its `RTCRtpSender` runs a
coroutine per packet (packetise, serialise, SRTP, then three layers of awaits down to the UDP
socket), which is most of a viewer's cost. The lean send path needs three things aiortc keeps
private: the SRTP session DTLS keyed, the UDP socket and address of the selected ICE pair, and
the RTCP for a sender's SSRC. The test and load-test viewers also count RTP before aiortc's
receive path. Nothing else on the send path touches these attributes (the publisher side's
tap is in receiver.py, its PLI in keyframes.py); pyproject.toml pins the aiortc and aioice
versions this was tested with.
"""

from __future__ import annotations

from collections.abc import Callable

from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.clock import current_datetime
from aiortc.codecs import is_rtx
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtcrtpparameters import RTCRtpSendParameters
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


# -- the receiving end, for test and load-test viewers -------------------------------------------


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
