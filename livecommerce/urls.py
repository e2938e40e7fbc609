"""The public URLs of a room, built in one place for the demo file, the pages and the API."""

from __future__ import annotations


def ws_base(base_url: str) -> str:
    return "ws" + base_url.removeprefix("http")


def room_urls(base_url: str, room_id: int) -> dict[str, str]:
    return {
        "whip_url": f"{base_url}/api/rooms/{room_id}/whip",
        "whep_url": f"{base_url}/api/rooms/{room_id}/whep",
        "ws_url": f"{ws_base(base_url)}/ws/rooms/{room_id}",
        "studio_url": f"{base_url}/studio/{room_id}",
        "watch_url": f"{base_url}/watch/{room_id}",
        "console_url": f"{base_url}/console/{room_id}",
    }
