// HLS playback in the browser: a room's LL-HLS playlist (or a recording's) into a <video>.
//
//   import { playHls } from "/static/js/hls-play.js";
//   const session = await playHls(playlistUrl, videoElement, { live: true });
//   session.kind;    // "hls.js" (Media Source Extensions) or "native" (Safari)
//   session.stop();
//
// hls.js (vendored under /static/vendor/hls.js/, Apache-2.0) plays wherever Media Source
// Extensions exist; Safari without them plays HLS natively. hls.js is loaded only when used.

const HLS_JS = "/static/vendor/hls.js/hls.min.mjs";

export class HlsError extends Error {
  constructor(message, fatal = true) {
    super(message);
    this.code = "hls_error";
    this.fatal = fatal;
  }
}

function hasMediaSource() {
  return Boolean(window.MediaSource || window.ManagedMediaSource);
}

export async function playHls(url, video, { live = true, onFatal = () => {} } = {}) {
  if (!hasMediaSource() && video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = url;
    video.play().catch(() => {});
    return {
      kind: "native",
      stop() {
        video.removeAttribute("src");
        video.load();
      },
    };
  }
  const { default: Hls } = await import(HLS_JS);
  if (!Hls.isSupported()) throw new HlsError("this browser cannot play HLS");
  const hls = new Hls({
    lowLatencyMode: live,
    enableWorker: false, // the pages' Content-Security-Policy allows no blob: workers
    backBufferLength: live ? 30 : Infinity,
  });
  hls.on(Hls.Events.ERROR, (_event, data) => {
    if (data.fatal) onFatal(new HlsError(`${data.type}: ${data.details}`));
  });
  hls.loadSource(url);
  hls.attachMedia(video);
  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    video.play().catch(() => {
      // autoplay with sound may need a tap; the page offers one
    });
  });
  return {
    kind: "hls.js",
    hls,
    stop() {
      hls.destroy();
    },
  };
}
