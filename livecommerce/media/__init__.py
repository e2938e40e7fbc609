"""Media plane: WHIP ingest and WHEP playback on aiortc, forwarding encoded frames without re-encoding."""
