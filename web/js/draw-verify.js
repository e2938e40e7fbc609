// Recompute a published prize draw in the browser (WebCrypto), exactly as docs/draws.md and
// livecommerce/commerce/draw_verification.py define it: verifyDraw(record) takes the JSON of
// GET /api/draws/{id} and resolves to {ok, mismatches, winners}.

export const ALGORITHM = "livecommerce-draw-v1";
const TWO_64 = 1n << 64n;
const encoder = new TextEncoder();

function hexToBytes(hex) {
  if (!/^[0-9a-f]*$/.test(hex) || hex.length % 2) throw new Error("not lower-case hex");
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

function bytesToHex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

function seedBytes(seed) {
  if (!/^[0-9a-f]{64}$/.test(seed)) throw new Error("a seed is 64 lower-case hex digits");
  return hexToBytes(seed);
}

export async function sha256Hex(bytes) {
  return bytesToHex(await crypto.subtle.digest("SHA-256", bytes));
}

export async function commitment(seed) {
  return sha256Hex(seedBytes(seed));
}

export function canonicalEntrants(userIds) {
  return [...new Set(userIds.map((id) => BigInt(id)))]
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

export async function entrantsHash(userIds) {
  return sha256Hex(encoder.encode(canonicalEntrants(userIds).join("\n")));
}

// Unsigned 64-bit big-endian words from HMAC-SHA256(seed, entrants_hash || counter) blocks.
async function* randomWords(seed, entrantsDigest) {
  const key = await crypto.subtle.importKey(
    "raw", seedBytes(seed), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const prefix = hexToBytes(entrantsDigest);
  const message = new Uint8Array(prefix.length + 8);
  message.set(prefix);
  const view = new DataView(message.buffer);
  for (let counter = 0n; counter < TWO_64; counter++) {
    view.setBigUint64(prefix.length, counter, false);
    const block = new DataView(await crypto.subtle.sign("HMAC", key, message));
    for (let offset = 0; offset < block.byteLength; offset += 8) yield block.getBigUint64(offset, false);
  }
}

// An unbiased integer in [0, bound): reject words in the incomplete top range of 2**64.
async function below(words, bound) {
  const n = BigInt(bound);
  const limit = TWO_64 - (TWO_64 % n);
  for (;;) {
    const { value } = await words.next();
    if (value < limit) return Number(value % n);
  }
}

export async function selectWinners(seed, userIds, winnersCount) {
  if (winnersCount < 1) throw new Error("winners_count must be at least 1");
  const pool = canonicalEntrants(userIds);
  const words = randomWords(seed, await entrantsHash(pool));
  const picks = Math.min(winnersCount, pool.length);
  for (let rank = 0; rank < picks; rank++) {
    const chosen = rank + (await below(words, pool.length - rank));
    [pool[rank], pool[chosen]] = [pool[chosen], pool[rank]];
  }
  return pool.slice(0, picks).map((id) => id.toString());
}

export async function verifyDraw(record) {
  const mismatches = [];
  if ((record.algorithm ?? ALGORITHM) !== ALGORITHM) {
    return { ok: false, mismatches: [`unknown algorithm ${record.algorithm}`], winners: [] };
  }
  if (record.state !== "closed" || record.seed == null) {
    return { ok: false, mismatches: ["the draw is not closed: the seed is revealed at the close"], winners: [] };
  }
  let recomputed;
  try {
    recomputed = await commitment(record.seed);
  } catch (error) {
    return { ok: false, mismatches: [`seed: ${error.message}`], winners: [] };
  }
  if (recomputed !== record.seed_commitment) {
    mismatches.push(`seed commitment: SHA-256 of the seed is ${recomputed}, published ${record.seed_commitment}`);
  }
  try {
    return await checkEntrantsAndWinners(record, mismatches);
  } catch (error) {
    return { ok: false, mismatches: [...mismatches, `malformed record: ${error.message}`], winners: [] };
  }
}

async function checkEntrantsAndWinners(record, mismatches) {
  const entrants = (record.entrants ?? []).map((id) => BigInt(id));
  const canonical = canonicalEntrants(entrants);
  if (canonical.length !== entrants.length || canonical.some((id, i) => id !== entrants[i])) {
    mismatches.push("entrants: the list is not distinct user ids in ascending order");
  }
  const hash = await entrantsHash(entrants);
  if (hash !== record.entrants_hash) {
    mismatches.push(`entrants hash: the list hashes to ${hash}, published ${record.entrants_hash}`);
  }
  if (canonical.length !== record.entrant_count) {
    mismatches.push(`entrant count: the list has ${canonical.length}, published ${record.entrant_count}`);
  }
  const ranked = [...(record.winners ?? [])].sort((a, b) => a.rank - b.rank);
  if (ranked.some((winner, i) => Number(winner.rank) !== i + 1)) {
    mismatches.push("winners: ranks are not 1, 2, 3, …");
  }
  const published = ranked.map((winner) => String(winner.user_id));
  const winners = await selectWinners(record.seed, entrants, record.winners_count);
  if (winners.join(",") !== published.join(",")) {
    mismatches.push(`winners: the seed and entrants select [${winners}], published [${published}]`);
  }
  return { ok: mismatches.length === 0, mismatches, winners };
}
