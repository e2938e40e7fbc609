"""Recordings in an S3-compatible bucket (moto's S3 server on loopback): FFmpeg's live is written
to the bucket, its VOD playlist and segments are served from there and decode, deleting removes
the objects; and a bucket that cannot be reached stops the recording, not the live."""

from __future__ import annotations

import io
import urllib.request
from collections.abc import Iterator

import aioboto3
import aiohttp
import av
import pytest
from helpers import free_port, wait_for
from moto.server import ThreadedMotoServer
from test_hls import get, segment_uris
from test_media_ffmpeg import HEIGHT, WIDTH, ffmpeg_publisher
from test_recording import recording_row

from livecommerce.appkeys import MEDIA

pytestmark = [pytest.mark.media, pytest.mark.timeout(240)]

BUCKET = "recordings"
PREFIX = "lc/"


@pytest.fixture
def s3_endpoint(monkeypatch) -> Iterator[str]:
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(name, value)
    port = free_port()
    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    s3.start()
    endpoint = f"http://127.0.0.1:{port}"
    # moto keeps its buckets in the process: start every test without any
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")).close()
    yield endpoint
    s3.stop()


@pytest.fixture
def settings(settings, s3_endpoint):
    return settings.model_copy(
        update={
            "recordings_s3_bucket": BUCKET,
            "recordings_s3_prefix": PREFIX,
            "recordings_s3_endpoint_url": s3_endpoint,
            "recordings_s3_region": "us-east-1",
        }
    )


async def bucket_keys(endpoint: str) -> list[str]:
    async with aioboto3.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1") as s3:
        answer = await s3.list_objects_v2(Bucket=BUCKET)
        return sorted(item["Key"] for item in answer.get("Contents", []))


async def test_a_live_is_recorded_to_the_bucket_and_played_back_from_it(server, tmp_path, s3_endpoint):
    async with aioboto3.Session().client("s3", endpoint_url=s3_endpoint, region_name="us-east-1") as s3:
        await s3.create_bucket(Bucket=BUCKET)
    world = await server.seed()
    async with ffmpeg_publisher(server, world, tmp_path, seconds=6) as publisher:
        await wait_for(lambda: not publisher.is_alive(), timeout=60, interval=0.5, message="FFmpeg's 6 s")

    async def complete():
        row = await recording_row(server, world.room_id)
        return row is not None and row.state == "complete"

    await wait_for(complete, timeout=60, interval=0.2, message="the recording in the bucket")
    row = await recording_row(server, world.room_id)
    session = row.stream_session_id
    keys = await bucket_keys(s3_endpoint)
    assert f"{PREFIX}{session}/index.m3u8" in keys and f"{PREFIX}{session}/init.mp4" in keys
    assert len(keys) == row.segments + 2
    assert not server.app[MEDIA].settings.recordings_path.exists()  # nothing on the node's disk

    base = f"{server.url}/recordings/{session}/"
    async with aiohttp.ClientSession() as http:
        status, _, playlist = await get(http, base + "index.m3u8")
        assert status == 200
        files = [(await get(http, base + "init.mp4"))[2]]
        files += [(await get(http, base + uri))[2] for uri in segment_uris(playlist.decode())]
        status, _, _ = await get(http, base + "999.m4s")
        assert status == 404
    container = av.open(io.BytesIO(b"".join(files)))
    sizes = {(frame.width, frame.height) for frame in container.decode(video=0)}
    container.close()
    assert sizes == {(WIDTH, HEIGHT)}
    assert row.duration_seconds == pytest.approx(6.0, abs=1.0)

    headers = {"Authorization": f"Bearer {world.tokens['operator']}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.delete(f"{server.url}/api/recordings/{session}") as response:
            assert response.status == 204
    assert await bucket_keys(s3_endpoint) == []


async def test_an_unreachable_bucket_stops_the_recording_and_the_live_goes_on(server, tmp_path, s3_endpoint):
    # the bucket was never created: every write is refused (NoSuchBucket), as with a wrong
    # bucket name or credentials; the live must not notice
    world = await server.seed()
    async with ffmpeg_publisher(server, world, tmp_path, seconds=60), aiohttp.ClientSession() as http:

        async def failed():
            row = await recording_row(server, world.room_id)
            return row is not None and row.state == "failed"

        await wait_for(failed, timeout=60, interval=0.2, message="the recording to stop")
        row = await recording_row(server, world.room_id)
        assert (
            row.error.startswith(f"cannot write init.mp4 to bucket {BUCKET}") or "NoSuchBucket" in row.error
        )
        stream = server.app[MEDIA].streams[world.room_id]
        output = stream.outputs[0]
        before = output.playlist.current.msn
        await wait_for(lambda: output.playlist.current.msn >= before + 2, timeout=30, message="more segments")
        assert stream.state == "live"
        status, _, _ = await get(http, f"{server.url}/hls/{world.room_id}/index.m3u8")
        assert status == 200
