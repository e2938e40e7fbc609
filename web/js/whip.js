// WHIP (RFC 9725) publishing from the browser: send a MediaStream to a room's WHIP URL.
//
//   import { publish } from "/static/js/whip.js";
//   const session = await publish(whipUrl, stream, streamKey);
//   ...
//   await session.stop();   // DELETE on the session resource, then close
//
// The offer is sent once every ICE candidate is gathered (no trickle), as the server's
// PATCH answers 405. ICE servers come from the server's /api/ice-servers. Video prefers H.264
// when the browser has it: an H.264 live is also served over HLS (VP8 is WebRTC only).

const GATHER_TIMEOUT_MS = 3000;

export class WhipError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function fetchIceServers(url) {
  const response = await fetch(new URL("/api/ice-servers", url));
  if (!response.ok) return [];
  return (await response.json()).ice_servers;
}

export function gatheringComplete(pc, timeoutMs = GATHER_TIMEOUT_MS) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState !== "complete") return;
      pc.removeEventListener("icegatheringstatechange", done);
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      pc.removeEventListener("icegatheringstatechange", done);
      resolve();
    }, timeoutMs);
    pc.addEventListener("icegatheringstatechange", done);
  });
}

export async function exchange(url, pc, token) {
  const headers = { "Content-Type": "application/sdp" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(url, { method: "POST", headers, body: pc.localDescription.sdp });
  if (response.status !== 201) {
    let code = "http_" + response.status;
    let message = response.statusText;
    try {
      const body = await response.json();
      code = body.error.code;
      message = body.error.message;
    } catch (_) {
      // not a JSON error body
    }
    throw new WhipError(response.status, code, message);
  }
  const location = new URL(response.headers.get("Location"), url).toString();
  await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  return location;
}

export function session(pc, location, token) {
  let stopped = false;
  return {
    pc,
    location,
    // The uplink failed: close without DELETE, so viewers keep waiting through the server's
    // grace period while a new publish() for the same room resumes the broadcast.
    abandon() {
      stopped = true;
      pc.close();
    },
    // The broadcast is over: DELETE the session resource, viewers see the stream end.
    async stop() {
      if (stopped) return;
      stopped = true;
      pc.close();
      const headers = token ? { Authorization: `Bearer ${token}` } : {};
      try {
        await fetch(location, { method: "DELETE", headers });
      } catch (_) {
        // the server ends the session on its own when the connection goes away
      }
    },
  };
}

// Constrained Baseline first (what the server forwards to every browser), then other H.264,
// then the rest; the server answers with the first codec of the offer it accepts.
export function preferH264(transceiver) {
  const codecs = RTCRtpSender.getCapabilities?.("video")?.codecs;
  if (!codecs || !transceiver.setCodecPreferences) return;
  const rank = (codec) => {
    if (codec.mimeType.toLowerCase() !== "video/h264") return 2;
    const fmtp = codec.sdpFmtpLine || "";
    return fmtp.includes("packetization-mode=1") && /profile-level-id=42e0/i.test(fmtp) ? 0 : 1;
  };
  transceiver.setCodecPreferences([...codecs].sort((a, b) => rank(a) - rank(b)));
}

export async function publish(url, stream, token, { iceServers } = {}) {
  const pc = new RTCPeerConnection({ iceServers: iceServers ?? (await fetchIceServers(url)) });
  try {
    for (const track of stream.getTracks()) {
      const transceiver = pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
      if (track.kind === "video") preferH264(transceiver);
    }
    await pc.setLocalDescription(await pc.createOffer());
    await gatheringComplete(pc);
    const location = await exchange(url, pc, token);
    return session(pc, location, token);
  } catch (error) {
    pc.close();
    throw error;
  }
}
