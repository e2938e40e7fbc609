"""Pure parts of the room protocol, driven directly: parsing, envelopes, frames, broker wire
format, token buckets, the resume decision, chat sampling, the blocked-word match and which
stream ends end the live."""

from __future__ import annotations

import struct

import orjson
import pytest

from livecommerce.errors import AppError
from livecommerce.http.throttle import BucketMap, LocalBuckets, Throttle, TokenBucket
from livecommerce.realtime import event_types, protocol
from livecommerce.realtime.chat import blocked_word_in, clean_text
from livecommerce.realtime.coalesce import TickBatch, sample_evenly
from livecommerce.realtime.moderation import clean_blocked_words
from livecommerce.realtime.resume import HistoryView, Resume, RoomHistory, plan_resume


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_parse_command_accepts_string_and_integer_ids_and_defaults_data():
    assert protocol.parse_command(
        '{"id": "a1", "type": "chat.send", "data": {"text": "hi"}}'
    ) == protocol.Command("a1", "chat.send", {"text": "hi"})
    assert protocol.parse_command('{"id": 3, "type": "card.unpin"}') == protocol.Command(3, "card.unpin", {})


@pytest.mark.parametrize(
    ("text", "code", "command_id"),
    [
        ("nope", "invalid_json", None),
        ('"a string"', "invalid", None),
        ('{"type": "x"}', "invalid", None),
        ('{"id": "", "type": "x"}', "invalid", None),
        ('{"id": false, "type": "x"}', "invalid", None),
        ('{"id": 1.5, "type": "x"}', "invalid", None),
        ('{"id": "' + "i" * 65 + '", "type": "x"}', "invalid", None),
        ('{"id": 1}', "invalid", 1),
        ('{"id": 1, "type": ""}', "invalid", 1),
        ('{"id": 1, "type": "x", "data": []}', "invalid", 1),
    ],
)
def test_parse_command_rejects_with_precise_error(text, code, command_id):
    with pytest.raises(protocol.ProtocolError) as caught:
        protocol.parse_command(text)
    assert caught.value.code == code
    assert caught.value.command_id == command_id


def test_event_parts_make_the_documented_envelope():
    head, tail = protocol.event_parts("stock", {"available": 3}, 1.23456)
    assert orjson.loads(head + b"17" + tail) == {
        "type": "stock",
        "seq": 17,
        "ts": 1.235,
        "data": {"available": 3},
    }
    assert orjson.loads(protocol.unsequenced_event("presence", {"viewers": 2}, 5.0))["seq"] is None


def test_ack_error_and_batch_shapes():
    assert orjson.loads(protocol.ack(4, {"ok": 1})) == {"type": "ack", "id": 4, "data": {"ok": 1}}
    error = orjson.loads(protocol.error("c", AppError("muted", "no", details={"until": "t"})))
    assert error == {
        "type": "error",
        "id": "c",
        "error": {"code": "muted", "message": "no", "details": {"until": "t"}},
    }
    assert protocol.batch([b"{}"]) == b"{}"
    assert orjson.loads(protocol.batch([b'{"a":1}', b'{"b":2}'])) == [{"a": 1}, {"b": 2}]


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_text_frame_length_encodings(size):
    payload = b"x" * size
    frame = protocol.text_frame(payload)
    assert frame[0] == 0x81
    if size < 126:
        assert frame[1] == size and frame[2:] == payload
    elif size < 65536:
        assert frame[1] == 126 and struct.unpack("!H", frame[2:4])[0] == size and frame[4:] == payload
    else:
        assert frame[1] == 127 and struct.unpack("!Q", frame[2:10])[0] == size and frame[10:] == payload


def test_close_frame_and_close_codes():
    frame = protocol.close_frame(4008, "slow consumer")
    assert frame[0] == 0x88 and frame[1] == len(frame) - 2
    assert struct.unpack("!H", frame[2:4])[0] == 4008 and frame[4:] == b"slow consumer"
    assert protocol.close_code_for(AppError("banned", "x")) == 4403
    assert protocol.close_code_for(AppError("invalid_token", "x")) == 4401
    assert protocol.close_code_for(AppError("not_found", "x")) == 4404


def test_broker_messages_round_trip():
    message = protocol.BrokerMessage(7, "chat", "chat.message", None, 42, b'{"x":"a\\nb"}')
    assert protocol.decode_broker_message(protocol.encode_broker_message(message)) == message
    private = protocol.BrokerMessage(7, "private", "order.updated", 99, None, b"{}")
    assert protocol.decode_broker_message(protocol.encode_broker_message(private)) == private


def test_token_bucket_allows_burst_then_refills_at_rate():
    clock = Clock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    assert [bucket.allow() for _ in range(4)] == [True, True, True, False]
    assert bucket.retry_after() == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.allow() and not bucket.allow()
    clock.now += 100
    assert [bucket.allow() for _ in range(4)] == [True, True, True, False]


def test_bucket_map_keeps_users_apart():
    clock = Clock()
    buckets = BucketMap(rate=1, burst=1, clock=clock)
    assert buckets.allow(1) and not buckets.allow(1)
    assert buckets.allow(2)
    assert buckets.retry_after(1) == pytest.approx(1.0)
    assert buckets.retry_after(3) == 0.0


def test_local_buckets_keep_each_limit_and_key_apart_and_say_how_long_to_wait():
    clock = Clock()
    buckets = LocalBuckets(clock=clock)
    assert [buckets.take("chat:1", 1, 2) for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]
    assert buckets.take("chat:2", 1, 2) == 0.0
    assert buckets.take("like:1", 4, 8) == 0.0  # another limit, another bucket
    clock.now += 1
    assert buckets.take("chat:1", 1, 2) == 0.0


def _view(latest: int, oldest: int | None) -> HistoryView:
    return HistoryView(latest, oldest, [])


@pytest.mark.parametrize(
    ("since", "latest", "oldest", "expected"),
    [
        (None, 10, 1, Resume.SNAPSHOT),
        (-1, 10, 1, Resume.SNAPSHOT),
        (10, 10, 1, Resume.REPLAY),
        (0, 0, None, Resume.REPLAY),
        (5, 10, 6, Resume.REPLAY),
        (5, 10, 7, Resume.SNAPSHOT),
        (5, 10, None, Resume.SNAPSHOT),
        (11, 10, 1, Resume.SNAPSHOT),
    ],
)
def test_resume_decision(since, latest, oldest, expected):
    assert plan_resume(since, _view(latest, oldest)) is expected


def test_room_history_is_bounded_and_replays_after_since():
    history = RoomHistory(limit=3)
    for _ in range(5):
        seq = history.next_seq()
        history.append(seq, str(seq).encode())
    view = history.view_after(3)
    assert (view.latest, view.oldest, view.events) == (5, 3, [(4, b"4"), (5, b"5")])
    assert plan_resume(2, history.view_after(2)) is Resume.REPLAY
    assert plan_resume(1, history.view_after(1)) is Resume.SNAPSHOT


def test_sample_evenly_keeps_ends_and_order():
    items = list(range(10))
    assert sample_evenly(items, 20) == items
    assert sample_evenly(items, 0) == []
    assert sample_evenly(items, 1) == [9]
    assert sample_evenly(items, 4) == [0, 3, 6, 9]


def test_tick_batch_samples_chat_but_keeps_every_other_event_in_order():
    batch = TickBatch(chat_per_tick=2)
    assert not batch
    for n in range(5):
        batch.add(b"chat%d" % n, droppable=True)
        if n == 2:
            batch.add(b"stock", droppable=False)
    assert batch.take() == [b"chat0", b"stock", b"chat4"]
    assert batch.dropped == 3 and not batch


def test_tick_batch_caps_pending_chat_at_four_ticks():
    batch = TickBatch(chat_per_tick=2)
    batch.add(b"stock", droppable=False)
    for n in range(20):
        batch.add(b"chat%d" % n, droppable=True)
    assert batch.dropped == 12
    taken = batch.take()
    assert taken == [b"stock", b"chat12", b"chat19"]
    assert batch.dropped == 12 + 6


def test_chat_text_cleaning_and_blocked_words():
    assert clean_text("  hi  ", 10) == "hi"
    with pytest.raises(AppError):
        clean_text("   ", 10)
    with pytest.raises(AppError):
        clean_text("x" * 11, 10)
    words = tuple(clean_blocked_words(["Scam", "fake  news", "c++"]))
    assert words == ("scam", "fake news", "c++")
    assert blocked_word_in("What a SCAM.", words) == "scam"
    assert blocked_word_in("fake\nnews again", words) == "fake news"
    assert blocked_word_in("I love c++", words) == "c++"
    assert blocked_word_in("scampi and newsletters", words) is None
    with pytest.raises(AppError):
        clean_blocked_words(["x" * 65])


def test_a_throttle_counts_only_failures_when_guarded():
    now = [0.0]
    throttle = Throttle("wrong keys", 2, clock=lambda: now[0])
    for _ in range(5):
        throttle.guard("a")  # guarding alone takes nothing
    throttle.failed("a")
    throttle.failed("a")
    with pytest.raises(AppError) as refused:
        throttle.guard("a")
    assert refused.value.code == "rate_limited" and refused.value.details["retry_after"] == 30
    throttle.guard("b")
    now[0] += 30
    throttle.guard("a")


def test_a_throttle_of_zero_is_unlimited():
    throttle = Throttle("guests", 0)
    for _ in range(1000):
        throttle.check("a")


@pytest.mark.parametrize(
    ("reason", "over"),
    [("publisher_left", True), ("publisher_lost", True), ("replaced", False), ("server_shutdown", False)],
)
def test_only_a_publisher_leaving_or_lost_past_the_grace_period_ends_the_live(reason, over):
    assert event_types.ends_the_live({"stream_session_id": 1, "reason": reason}) is over
