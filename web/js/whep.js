// WHEP playback in the browser: receive a room's stream into a <video> element.
//
//   import { play } from "/static/js/whep.js";
//   const session = await play(whepUrl, videoElement);
//   session.pc.addEventListener("connectionstatechange", ...);  // "failed"/"closed": stream gone
//   await session.stop();   // DELETE on the session resource, then close

import { exchange, fetchIceServers, gatheringComplete, session } from "./whip.js";

export { WhipError as WhepError } from "./whip.js";

export async function play(url, video, { token, iceServers } = {}) {
  const pc = new RTCPeerConnection({ iceServers: iceServers ?? (await fetchIceServers(url)) });
  const stream = new MediaStream();
  pc.addEventListener("track", (event) => {
    stream.addTrack(event.track);
    if (video.srcObject !== stream) video.srcObject = stream;
    video.play().catch(() => {
      // autoplay with sound may need a tap; the page offers one
    });
  });
  try {
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    await pc.setLocalDescription(await pc.createOffer());
    await gatheringComplete(pc);
    const location = await exchange(url, pc, token);
    return { ...session(pc, location, token), stream };
  } catch (error) {
    pc.close();
    throw error;
  }
}
