"""Commit-reveal prize draws as pure functions: the seed commitment, the entrant-list hash,
winner selection, and `verify()` that recomputes a published draw (algorithm in docs/draws.md).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

ALGORITHM = "livecommerce-draw-v1"
SEED_BYTES = 32
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TWO_64 = 1 << 64


def new_seed() -> str:
    """A fresh secret seed: 32 random bytes as 64 lower-case hex digits."""
    return secrets.token_hex(SEED_BYTES)


def seed_bytes(seed: str) -> bytes:
    """The 32 raw bytes behind a seed's 64 lower-case hex digits; ValueError otherwise."""
    if not _HEX64.match(seed):
        raise ValueError("a seed is 64 lower-case hex digits")
    return bytes.fromhex(seed)


def commitment(seed: str) -> str:
    """SHA-256 of the seed's 32 raw bytes, as lower-case hex: published before the draw opens."""
    return hashlib.sha256(seed_bytes(seed)).hexdigest()


def canonical_entrants(user_ids: Iterable[int]) -> list[int]:
    """The canonical entrant list: distinct user ids in ascending order."""
    return sorted(set(user_ids))


def entrants_bytes(entrants: list[int]) -> bytes:
    """Canonical entrants as decimal ASCII joined by a line feed, no trailing newline."""
    return "\n".join(str(user_id) for user_id in entrants).encode("ascii")


def entrants_hash(entrants: list[int]) -> str:
    """SHA-256 of `entrants_bytes` of the canonical list, as lower-case hex."""
    return hashlib.sha256(entrants_bytes(canonical_entrants(entrants))).hexdigest()


def _random_words(seed: str, entrants_digest: str) -> Iterator[int]:
    """Unsigned 64-bit big-endian words from HMAC-SHA256(seed, entrants_hash || counter) blocks."""
    key = seed_bytes(seed)
    prefix = bytes.fromhex(entrants_digest)
    for counter in range(_TWO_64):
        block = hmac.new(key, prefix + counter.to_bytes(8, "big"), hashlib.sha256).digest()
        for offset in range(0, len(block), 8):
            yield int.from_bytes(block[offset : offset + 8], "big")


def _below(words: Iterator[int], bound: int) -> int:
    """An unbiased integer in [0, bound): reject words in the incomplete top range of 2**64."""
    limit = _TWO_64 - (_TWO_64 % bound)
    while True:
        word = next(words)
        if word < limit:
            return word % bound


def select_winners(seed: str, entrants: list[int], winners_count: int) -> list[int]:
    """Winners in rank order: a partial Fisher–Yates shuffle of the canonical list, driven by
    the HMAC stream keyed with the seed; min(winners_count, len(entrants)) of them."""
    if winners_count < 1:
        raise ValueError("winners_count must be at least 1")
    pool = canonical_entrants(entrants)
    words = _random_words(seed, entrants_hash(pool))
    picks = min(winners_count, len(pool))
    for rank in range(picks):
        chosen = rank + _below(words, len(pool) - rank)
        pool[rank], pool[chosen] = pool[chosen], pool[rank]
    return pool[:picks]


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of recomputing a published draw: ok, or every mismatch found."""

    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def _winner_ids(winners: Any) -> list[int]:
    """Published winners are `[{"rank", "user_id", ...}]`; return the ids in rank order."""
    ranked = sorted(winners, key=lambda winner: int(winner["rank"]))
    if [int(winner["rank"]) for winner in ranked] != list(range(1, len(ranked) + 1)):
        raise ValueError("winner ranks are not 1, 2, 3, …")
    return [int(winner["user_id"]) for winner in ranked]


def verify(published: Mapping[str, Any]) -> Verification:
    """Recompute a closed draw from its published record (the `GET /api/draws/{id}` JSON):
    seed against commitment, entrant list against its hash and count, winners against the
    selection. Every mismatch is reported, in that order."""
    mismatches: list[str] = []
    if published.get("algorithm", ALGORITHM) != ALGORITHM:
        return Verification([f"unknown algorithm {published.get('algorithm')!r}; expected {ALGORITHM}"])
    seed = published.get("seed")
    if published.get("state") != "closed" or seed is None:
        return Verification(["the draw is not closed: the seed is revealed at the close"])
    try:
        recomputed_commitment = commitment(str(seed))
    except ValueError as exc:
        return Verification([f"seed: {exc}"])
    if recomputed_commitment != published.get("seed_commitment"):
        mismatches.append(
            f"seed commitment: SHA-256 of the seed is {recomputed_commitment}, "
            f"published {published.get('seed_commitment')}"
        )
    try:
        entrants = [int(user_id) for user_id in published.get("entrants") or []]
        winners = _winner_ids(published.get("winners") or [])
        winners_count = int(published["winners_count"])
    except (KeyError, TypeError, ValueError) as exc:
        return Verification([*mismatches, f"malformed record: {exc}"])
    if entrants != canonical_entrants(entrants):
        mismatches.append("entrants: the list is not distinct user ids in ascending order")
    recomputed_hash = entrants_hash(entrants)
    if recomputed_hash != published.get("entrants_hash"):
        mismatches.append(
            f"entrants hash: the list hashes to {recomputed_hash}, published {published.get('entrants_hash')}"
        )
    if len(set(entrants)) != published.get("entrant_count"):
        mismatches.append(
            f"entrant count: the list has {len(set(entrants))}, published {published.get('entrant_count')}"
        )
    try:
        expected = select_winners(str(seed), entrants, winners_count)
    except ValueError as exc:
        return Verification([*mismatches, f"winners: {exc}"])
    if expected != winners:
        mismatches.append(f"winners: the seed and entrants select {expected}, published {winners}")
    return Verification(mismatches)
