"""A WHIP publisher or WHEP player built on GStreamer's webrtcbin, for the interoperability tests.

Runs under the system Python (PyGObject and GStreamer come from the distribution, not the
virtualenv):

    python3 gst_webrtc_client.py publish|play URL [--token KEY] [--bundle-policy max-bundle]
                                 [--seconds N]

It offers VP8 video and Opus audio (publish: a test pattern and a tone; play: receive-only),
gathers on 127.0.0.1, posts the complete offer, applies the answer and prints one JSON line per
second: `{"state": ICE connection state, "video": buffers, "audio": buffers}` (for a player,
decoded buffers; for a publisher, buffers sent to the payloaders). A DELETE ends the session.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

PUBLISH_PIPELINE = """
webrtcbin name=webrtc bundle-policy={policy}
videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=15/1
  ! identity name=video_count ! vp8enc deadline=1 keyframe-max-dist=15 ! rtpvp8pay
  ! application/x-rtp,media=video,encoding-name=VP8,payload=96 ! webrtc.
audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! identity name=audio_count
  ! opusenc ! rtpopuspay ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111 ! webrtc.
"""
RECEIVE_CAPS = {
    "video": "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000",
    "audio": "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000",
}


class Client:
    def __init__(self, role: str, url: str, token: str | None, policy: str, seconds: float) -> None:
        self.role, self.url, self.token, self.seconds = role, url, token, seconds
        self.counts = {"video": 0, "audio": 0}
        self.location: str | None = None
        self.loop = GLib.MainLoop()
        if role == "publish":
            self.pipeline = Gst.parse_launch(PUBLISH_PIPELINE.format(policy=policy))
            self.webrtc = self.pipeline.get_by_name("webrtc")
            for kind in self.counts:
                self._count(self.pipeline.get_by_name(f"{kind}_count").get_static_pad("src"), kind)
        else:
            self.pipeline = Gst.Pipeline.new()
            self.webrtc = Gst.ElementFactory.make("webrtcbin", "webrtc")
            self.webrtc.set_property("bundle-policy", policy)
            self.pipeline.add(self.webrtc)
            for caps in RECEIVE_CAPS.values():
                self.webrtc.emit(
                    "add-transceiver",
                    GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY,
                    Gst.Caps.from_string(caps),
                )
            self.webrtc.connect("pad-added", self._on_pad)
        self.webrtc.get_property("ice-agent").emit("add-local-ip-address", "127.0.0.1")
        self.webrtc.connect("on-negotiation-needed", self._on_negotiation_needed)
        self.webrtc.connect("notify::ice-gathering-state", self._on_gathering)
        self.offered = False

    def _count(self, pad: Gst.Pad, kind: str) -> None:
        def probe(pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
            self.counts[kind] += 1
            return Gst.PadProbeReturn.OK

        pad.add_probe(Gst.PadProbeType.BUFFER, probe)

    def _on_pad(self, webrtc: Gst.Element, pad: Gst.Pad) -> None:
        if pad.direction != Gst.PadDirection.SRC:
            return
        kind = pad.get_current_caps().get_structure(0).get_string("media")
        decode = Gst.parse_bin_from_description(
            "rtpvp8depay ! vp8dec ! fakesink name=sink"
            if kind == "video"
            else "rtpopusdepay ! opusdec ! fakesink name=sink",
            True,
        )
        self.pipeline.add(decode)
        decode.sync_state_with_parent()
        pad.link(decode.get_static_pad("sink"))
        self._count(decode.get_by_name("sink").get_static_pad("sink"), kind)

    def _on_negotiation_needed(self, webrtc: Gst.Element) -> None:
        promise = Gst.Promise.new_with_change_func(self._on_offer, None)
        webrtc.emit("create-offer", None, promise)

    def _on_offer(self, promise: Gst.Promise, _: object) -> None:
        offer = promise.get_reply().get_value("offer")
        self.webrtc.emit("set-local-description", offer, Gst.Promise.new())

    def _on_gathering(self, webrtc: Gst.Element, _: object) -> None:
        if webrtc.get_property("ice-gathering-state") != GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            return
        if self.offered:
            return
        self.offered = True
        GLib.idle_add(self._post_offer)

    def _post_offer(self) -> bool:
        offer = self.webrtc.get_property("local-description").sdp.as_text()
        headers = {"Content-Type": "application/sdp"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url, data=offer.encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = response.read().decode()
                self.location = urllib.parse.urljoin(self.url, response.headers["Location"])
        except urllib.error.HTTPError as exc:
            print(json.dumps({"error": exc.code, "body": exc.read().decode()}), flush=True)
            self.loop.quit()
            return False
        _, sdp = GstSdp.SDPMessage.new_from_text(answer)
        description = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, sdp)
        self.webrtc.emit("set-remote-description", description, Gst.Promise.new())
        return False

    def _report(self) -> bool:
        state = self.webrtc.get_property("ice-connection-state").value_nick
        print(json.dumps({"state": state, **self.counts}), flush=True)
        return True

    def run(self) -> int:
        self.pipeline.set_state(Gst.State.PLAYING)
        GLib.timeout_add_seconds(1, self._report)
        GLib.timeout_add(int(self.seconds * 1000), self.loop.quit)
        self.loop.run()
        if self.location is not None:
            request = urllib.request.Request(self.location, method="DELETE")
            if self.token:
                request.add_header("Authorization", f"Bearer {self.token}")
            try:
                urllib.request.urlopen(request, timeout=10).close()
            except urllib.error.URLError:
                pass
        self.pipeline.set_state(Gst.State.NULL)
        return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=("publish", "play"))
    parser.add_argument("url")
    parser.add_argument("--token")
    parser.add_argument(
        "--bundle-policy", default="max-bundle", choices=("max-bundle", "max-compat", "balanced")
    )
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    Gst.init(None)
    return Client(args.role, args.url, args.token, args.bundle_policy, args.seconds).run()


if __name__ == "__main__":
    sys.exit(main())
