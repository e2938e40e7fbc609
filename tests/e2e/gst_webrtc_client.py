"""A WHIP publisher or WHEP player built on GStreamer's webrtcbin, for the interoperability tests.

Runs under the system Python (PyGObject and GStreamer's introspection data come from Debian):

    gst_webrtc_client.py publish WHIP_URL --token KEY [--bundle-policy max-bundle] [--size 320x240]
    gst_webrtc_client.py play WHEP_URL [--bundle-policy max-compat] [--video h264]

It writes one JSON object a line on stdout: `answered` (with the session's `location`), the
`connection` state as it changes, and for a player `frames` every half second (decoded `video`
and `audio` buffers and the video `width`/`height`). SIGTERM sends DELETE to the session and exits.

ICE runs on loopback only (the libnice agent is given 127.0.0.1 as its one local address, UDP),
and the offer goes out once gathering is complete, as WHIP and WHEP have no trickle by default.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("Nice", "0.1")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC, Nice  # noqa: E402

VIDEO_CAPS = "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000"
# What browsers and GStreamer pipelines built for them offer: constrained baseline, level 3.1.
H264_CAPS = (
    "application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000,"
    "packetization-mode=(string)1,profile-level-id=(string)42e01f,level-asymmetry-allowed=(string)1"
)
PLAYED_VIDEO = {"vp8": VIDEO_CAPS, "h264": H264_CAPS}
AUDIO_CAPS = (
    "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000,encoding-params=(string)2"
)
SSRCS = {"video": 0x1111, "audio": 0x2222}
PUBLISH = (
    "webrtcbin name=webrtc "
    "videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},framerate=15/1 "
    "! videoconvert ! vp8enc deadline=1 cpu-used=8 target-bitrate=300000 keyframe-max-dist=30 "
    f"! rtpvp8pay pt=96 ssrc={SSRCS['video']} ! {VIDEO_CAPS} ! webrtc. "
    "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! opusenc "
    f"! rtpopuspay pt=111 ssrc={SSRCS['audio']} ! {AUDIO_CAPS} ! webrtc."
)


def say(event: str, **data: object) -> None:
    print(json.dumps({"event": event, **data}), flush=True)


class Client:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.loop = GLib.MainLoop()
        self.location: str | None = None
        self.counts = {"video": 0, "audio": 0}
        self.size: tuple[int, int] | None = None
        width, height = args.size.split("x")
        if args.role == "publish":
            self.pipeline = Gst.parse_launch(PUBLISH.format(width=width, height=height))
        else:
            self.pipeline = Gst.Pipeline.new()
            self.pipeline.add(Gst.ElementFactory.make("webrtcbin", "webrtc"))
        self.webrtc = self.pipeline.get_by_name("webrtc")
        Gst.util_set_object_arg(self.webrtc, "bundle-policy", args.bundle_policy)
        self._loopback_only()
        if args.role == "publish":
            self._send_only()
        else:
            for caps in (PLAYED_VIDEO[args.video], AUDIO_CAPS):
                self.webrtc.emit(
                    "add-transceiver",
                    GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY,
                    Gst.Caps.from_string(caps),
                )
            self.webrtc.connect("pad-added", self._incoming_pad)
        self.webrtc.connect("on-negotiation-needed", self._negotiate)
        self.webrtc.connect("notify::ice-gathering-state", self._gathering)
        self.webrtc.connect("notify::connection-state", self._connection)
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message::error", self._error)

    def _loopback_only(self) -> None:
        # webrtcbin never sinks its ICE object's floating reference, so the Python wrapper ends
        # up holding the only one: keep the wrapper for as long as webrtcbin runs.
        self.ice = self.webrtc.get_property("ice-agent")
        self.ice.set_property("ice-tcp", False)
        address = Nice.Address()
        address.set_from_string("127.0.0.1")
        self.ice.get_property("agent").add_local_address(address)

    def _send_only(self) -> None:
        # The transceivers come from the linked sink pads. Codec preferences (with the
        # payloaders' SSRCs, which a sending section's caps must carry) make the offer
        # independent of when the first buffers reach webrtcbin.
        for index, (kind, caps) in enumerate((("video", VIDEO_CAPS), ("audio", AUDIO_CAPS))):
            transceiver = self.webrtc.emit("get-transceiver", index)
            transceiver.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
            preferred = Gst.Caps.from_string(f"{caps},ssrc=(uint){SSRCS[kind]}")
            transceiver.set_property("codec-preferences", preferred)

    def run(self) -> int:
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, self._stop)
        GLib.timeout_add(500, self._report)
        self.pipeline.set_state(Gst.State.PLAYING)
        self.loop.run()
        self.pipeline.set_state(Gst.State.NULL)
        return 0

    # signalling

    def _negotiate(self, _webrtc: Gst.Element) -> None:
        GLib.idle_add(self._create_offer)

    def _create_offer(self) -> bool:
        promise = Gst.Promise.new_with_change_func(self._offer_created, None)
        self.webrtc.emit("create-offer", None, promise)
        return False

    def _offer_created(self, promise: Gst.Promise, _data: object) -> None:
        promise.wait()
        reply = promise.get_reply()  # held: the promise owns it and the offer lives in it
        offer = reply.get_value("offer")
        self.webrtc.emit("set-local-description", offer, Gst.Promise.new())

    def _gathering(self, webrtc: Gst.Element, _spec: object) -> None:
        if webrtc.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            GLib.idle_add(self._exchange)

    def _exchange(self) -> bool:
        if self.location is not None:
            return False
        offer = self.webrtc.get_property("local-description").sdp.as_text()
        headers = {"Content-Type": "application/sdp"}
        if self.args.token:
            headers["Authorization"] = f"Bearer {self.args.token}"
        request = urllib.request.Request(self.args.url, offer.encode(), headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = response.read().decode()
                self.location = urllib.parse.urljoin(self.args.url, response.headers["Location"])
        except urllib.error.HTTPError as error:
            say("refused", status=error.code, body=error.read().decode(), offer=offer)
            self.loop.quit()
            return False
        _, message = GstSdp.SDPMessage.new_from_text(answer)
        description = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, message)
        self.webrtc.emit("set-remote-description", description, Gst.Promise.new())
        say("answered", location=self.location, offer=offer, answer=answer)
        return False

    def _connection(self, webrtc: Gst.Element, _spec: object) -> None:
        state = webrtc.get_property("connection-state")
        say("connection", state=state.value_nick)

    def _stop(self) -> bool:
        if self.location is not None:
            headers = {"Authorization": f"Bearer {self.args.token}"} if self.args.token else {}
            request = urllib.request.Request(self.location, headers=headers, method="DELETE")
            try:
                urllib.request.urlopen(request, timeout=10).close()
            except OSError as error:
                say("delete_failed", problem=str(error))
        self.loop.quit()
        return False

    def _error(self, _bus: Gst.Bus, message: Gst.Message) -> None:
        error, debug = message.parse_error()
        say("error", problem=error.message, debug=debug)
        self.loop.quit()

    # playing: decode what arrives and count it after the decoder

    def _incoming_pad(self, _webrtc: Gst.Element, pad: Gst.Pad) -> None:
        if pad.direction != Gst.PadDirection.SRC:
            return
        media = pad.get_current_caps().get_structure(0).get_string("media")
        decoder = Gst.ElementFactory.make("decodebin")
        decoder.connect("pad-added", self._decoded_pad, media)
        self.pipeline.add(decoder)
        decoder.sync_state_with_parent()
        pad.link(decoder.get_static_pad("sink"))

    def _decoded_pad(self, _decoder: Gst.Element, pad: Gst.Pad, media: str) -> None:
        sink = Gst.ElementFactory.make("fakesink")
        sink.set_property("signal-handoffs", True)
        sink.set_property("sync", False)
        sink.connect("handoff", self._decoded, media)
        self.pipeline.add(sink)
        sink.sync_state_with_parent()
        pad.link(sink.get_static_pad("sink"))

    def _decoded(self, _sink: Gst.Element, _buffer: Gst.Buffer, pad: Gst.Pad, media: str) -> None:
        self.counts[media] += 1
        if media == "video":
            structure = pad.get_current_caps().get_structure(0)
            self.size = (structure.get_int("width")[1], structure.get_int("height")[1])

    def _report(self) -> bool:
        if self.args.role == "play":
            say("frames", video=self.counts["video"], audio=self.counts["audio"], size=self.size)
        return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=("publish", "play"))
    parser.add_argument("url")
    parser.add_argument("--token", default="")
    parser.add_argument(
        "--bundle-policy", default="max-bundle", choices=("none", "balanced", "max-compat", "max-bundle")
    )
    parser.add_argument("--size", default="320x240", help="the published picture, WIDTHxHEIGHT")
    parser.add_argument(
        "--video", default="vp8", choices=sorted(PLAYED_VIDEO), help="the codec a player offers"
    )
    Gst.init(None)
    return Client(parser.parse_args()).run()


if __name__ == "__main__":
    sys.exit(main())
