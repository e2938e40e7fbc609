"""The draw algorithm as pure functions: the documented example, tamper detection, uniformity,
and the browser's WebCrypto reimplementation agreeing with the server's."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from livecommerce.draws.verification import (
    ALGORITHM,
    canonical_entrants,
    commitment,
    entrants_bytes,
    entrants_hash,
    new_seed,
    select_winners,
    verify,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SEED = bytes(range(32)).hex()
EXAMPLE_ENTRANTS = [17, 3, 42, 8, 105]


def record(seed: str, entrants: list[int], winners_count: int) -> dict:
    """A published draw record as `GET /api/draws/{id}` answers it."""
    canonical = canonical_entrants(entrants)
    winners = select_winners(seed, canonical, winners_count)
    return {
        "algorithm": ALGORITHM,
        "state": "closed",
        "seed": seed,
        "seed_commitment": commitment(seed),
        "entrants": canonical,
        "entrants_hash": entrants_hash(canonical),
        "entrant_count": len(canonical),
        "winners_count": winners_count,
        "winners": [{"rank": rank, "user_id": uid} for rank, uid in enumerate(winners, 1)],
    }


def test_worked_example_in_the_docs_is_what_the_code_computes():
    doc = (ROOT / "docs" / "draws.md").read_text()
    expected_commitment = "630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd"
    expected_hash = "f565cd2266d6ce4da69fac8763da811d00847e9dd88c8de979c384b524fb6858"
    assert commitment(EXAMPLE_SEED) == expected_commitment
    assert entrants_bytes(canonical_entrants(EXAMPLE_ENTRANTS)) == b"3\n8\n17\n42\n105"
    assert entrants_hash(EXAMPLE_ENTRANTS) == expected_hash
    assert select_winners(EXAMPLE_SEED, EXAMPLE_ENTRANTS, 3) == [8, 3, 42]
    for value in (EXAMPLE_SEED, expected_commitment, expected_hash, "Winners in rank order: **8, 3, 42**"):
        assert value in doc


def test_commitment_is_sha256_of_the_raw_seed_bytes():
    seed = new_seed()
    assert len(seed) == 64
    assert commitment(seed) == hashlib.sha256(bytes.fromhex(seed)).hexdigest()
    for bad in ("00" * 31, "AB" * 32, "zz" * 32, ""):
        with pytest.raises(ValueError):
            commitment(bad)


def test_entrants_hash_ignores_order_and_duplicates_but_not_membership():
    assert entrants_hash([5, 1, 3, 3]) == entrants_hash([1, 3, 5])
    assert entrants_hash([1, 3, 5]) != entrants_hash([1, 3, 6])
    assert entrants_hash([]) == hashlib.sha256(b"").hexdigest()


def test_winners_are_distinct_entrants_and_capped_by_the_entrant_count():
    seed = new_seed()
    assert sorted(select_winners(seed, [9, 4, 7], 10)) == [4, 7, 9]
    assert select_winners(seed, [], 3) == []
    winners = select_winners(seed, list(range(1, 501)), 20)
    assert len(set(winners)) == 20 and all(1 <= w <= 500 for w in winners)
    with pytest.raises(ValueError):
        select_winners(seed, [1, 2], 0)


def test_verify_accepts_a_genuine_record():
    result = verify(record(new_seed(), list(range(100, 160)), 3))
    assert result.ok, result.mismatches


def test_verify_detects_any_change_to_seed_entrants_or_winners():
    genuine = record(EXAMPLE_SEED, list(range(1, 41)), 3)
    other_seed = "ff" + EXAMPLE_SEED[2:]
    first, second, third = (w["user_id"] for w in genuine["winners"])
    loser = next(uid for uid in genuine["entrants"] if uid not in (first, second, third))
    tampered = {
        "seed": {**genuine, "seed": other_seed},
        "seed and commitment": {**genuine, "seed": other_seed, "seed_commitment": commitment(other_seed)},
        "entrant removed": {**genuine, "entrants": genuine["entrants"][1:]},
        "entrant added": {**genuine, "entrants": [*genuine["entrants"], 999]},
        "entrants reordered": {**genuine, "entrants": list(reversed(genuine["entrants"]))},
        "entrant count": {**genuine, "entrant_count": genuine["entrant_count"] + 1},
        "winners reordered": {
            **genuine,
            "winners": [
                {"rank": 1, "user_id": second},
                {"rank": 2, "user_id": first},
                {"rank": 3, "user_id": third},
            ],
        },
        "winner replaced": {
            **genuine,
            "winners": [{"rank": 1, "user_id": loser}, *genuine["winners"][1:]],
        },
        "winner dropped": {**genuine, "winners": genuine["winners"][:2]},
    }
    for what, published in tampered.items():
        result = verify(published)
        assert not result.ok, what
    # A consistent re-hash of a changed list still fails: the winners no longer follow.
    changed = [*genuine["entrants"][1:], 999]
    rehashed = {**genuine, "entrants": changed, "entrants_hash": entrants_hash(changed)}
    assert any(m.startswith("winners:") for m in verify(rehashed).mismatches)
    assert verify(tampered["seed"]).mismatches[0].startswith("seed commitment:")


def test_verify_reports_malformed_and_open_records_without_raising():
    assert not verify({"state": "open", "seed": None}).ok
    assert verify({**record(EXAMPLE_SEED, [1, 2], 1), "seed": "nope"}).mismatches == [
        "seed: a seed is 64 lower-case hex digits"
    ]
    assert not verify({**record(EXAMPLE_SEED, [1, 2], 1), "winners": [{"rank": 2, "user_id": 1}]}).ok
    assert not verify({**record(EXAMPLE_SEED, [1, 2], 1), "algorithm": "other"}).ok
    assert not verify({**record(EXAMPLE_SEED, [1, 2], 1), "entrants": [1, "two"]}).ok
    assert not verify({**record(EXAMPLE_SEED, [1, 2], 1), "winners_count": 0}).ok


def chi_square_critical(df: int, z: float = 3.0902) -> float:
    """The chi-square value exceeded with probability ~0.001 (Wilson–Hilferty)."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def chi_square(counts: Counter, cells: list, total: int) -> float:
    expected = total / len(cells)
    return sum((counts[cell] - expected) ** 2 / expected for cell in cells)


def test_selection_is_uniform_over_ordered_choices():
    """Every ordered choice of 2 winners among 7 entrants (42 cells) is equally likely."""
    rng = random.Random(20240607)
    entrants = [11, 23, 35, 47, 59, 61, 73]
    trials = 21_000
    counts = Counter(tuple(select_winners(rng.randbytes(32).hex(), entrants, 2)) for _ in range(trials))
    cells = list(itertools.permutations(entrants, 2))
    assert set(counts) <= set(cells)
    assert chi_square(counts, cells, trials) < chi_square_critical(len(cells) - 1)


def test_chi_square_check_rejects_a_biased_selector():
    """The uniformity check has teeth: modulo-biased picking over a small range fails it."""
    rng = random.Random(7)
    cells = list(range(6))
    trials = 12_000
    counts = Counter(rng.randrange(8) % 6 for _ in range(trials))
    assert chi_square(counts, cells, trials) > chi_square_critical(len(cells) - 1)


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node for the browser module")
def test_browser_verifier_agrees_with_the_server(tmp_path):
    rng = random.Random(99)
    genuine = [
        record(
            rng.randbytes(32).hex(), rng.sample(range(1, 10**9), rng.randrange(0, 60)), rng.randrange(1, 5)
        )
        for _ in range(12)
    ]
    genuine.append(record(EXAMPLE_SEED, EXAMPLE_ENTRANTS, 3))
    tampered = [
        {**genuine[0], "seed": "ff" + genuine[0]["seed"][2:]},
        {**genuine[-1], "entrants": [3, 8, 17, 42]},
        {**genuine[-1], "entrants": [3, "eight"]},
        {**genuine[-1], "winners_count": 0},
        {
            **genuine[-1],
            "winners": [{"rank": 1, "user_id": 3}, {"rank": 2, "user_id": 8}, {"rank": 3, "user_id": 42}],
        },
        {
            **genuine[-1],
            "winners": [{"rank": 2, "user_id": 8}, {"rank": 3, "user_id": 3}, {"rank": 4, "user_id": 42}],
        },
    ]
    script = tmp_path / "check.mjs"
    module = (ROOT / "web/js/draw-verify.js").as_uri()
    script.write_text(
        f'import {{ verifyDraw }} from "{module}";\n'
        "let input = '';\n"
        "for await (const chunk of process.stdin) input += chunk;\n"
        "const out = [];\n"
        "for (const r of JSON.parse(input)) out.push(await verifyDraw(r));\n"
        "console.log(JSON.stringify(out));\n"
    )
    done = subprocess.run(
        ["node", str(script)],
        input=json.dumps(genuine + tampered),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    for published, result in zip(genuine, results, strict=False):
        assert result["ok"], result["mismatches"]
        assert result["winners"] == [str(w["user_id"]) for w in published["winners"]]
    assert [r["ok"] for r in results[len(genuine) :]] == [False] * len(tampered)
