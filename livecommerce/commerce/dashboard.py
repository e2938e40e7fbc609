"""Sales figures for one room (or one stream of it): GMV, orders, units, viewers, conversion per
product card.

A product card has two conversions: `tap_conversion`, paying buyers ÷ viewers who tapped Buy on
it, and `viewer_conversion`, paying buyers ÷ the window's peak viewer count. Money counts paid
orders only (refunded ones are subtracted by leaving them out). The orders series has one row per
bucket and product, the viewers series one row per bucket (the highest per-minute count in it);
the CSV export joins the two.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from livecommerce.auth import Principal
from livecommerce.commerce.lifecycle import SOLD_STATUSES
from livecommerce.commerce.ownership import authorize_on
from livecommerce.errors import AppError
from livecommerce.timestamps import iso

SOLD = "(" + ", ".join(f"'{status}'" for status in SOLD_STATUSES) + ")"
"""Orders counted as sold (paid, and on their way or delivered since) as an SQL list."""
PER_PRODUCT = text(
    f"""
    WITH taps AS (
        SELECT s.product_id, count(*) AS taps, count(DISTINCT a.user_id) AS tappers
        FROM (
            SELECT a.user_id, f.sku_id FROM order_attempts a JOIN flash_sales f ON f.id = a.sale_id
            WHERE f.room_id = :room AND a.created_at >= :since AND a.created_at < :until
            UNION ALL
            SELECT a.user_id, a.sku_id FROM order_attempts a
            WHERE a.room_id = :room AND a.sku_id IS NOT NULL AND a.created_at >= :since AND a.created_at < :until
        ) a JOIN skus s ON s.id = a.sku_id
        GROUP BY s.product_id
    ), sold AS (
        SELECT s.product_id, count(*) AS orders,
               count(*) FILTER (WHERE o.status IN {SOLD}) AS paid_orders,
               count(DISTINCT o.user_id) FILTER (WHERE o.status IN {SOLD}) AS buyers,
               coalesce(sum(o.quantity) FILTER (WHERE o.status IN {SOLD}), 0)::bigint AS units,
               coalesce(sum(o.amount_minor) FILTER (WHERE o.status IN {SOLD}), 0)::bigint AS gmv_minor
        FROM orders o JOIN skus s ON s.id = o.sku_id
        WHERE o.room_id = :room AND o.created_at >= :since AND o.created_at < :until
        GROUP BY s.product_id
    )
    SELECT p.id AS product_id, p.name, coalesce(t.taps, 0) AS taps, coalesce(t.tappers, 0) AS tappers,
           coalesce(s.orders, 0) AS orders, coalesce(s.paid_orders, 0) AS paid_orders,
           coalesce(s.buyers, 0) AS buyers, coalesce(s.units, 0) AS units, coalesce(s.gmv_minor, 0) AS gmv_minor
    FROM products p LEFT JOIN taps t ON t.product_id = p.id LEFT JOIN sold s ON s.product_id = p.id
    WHERE t.product_id IS NOT NULL OR s.product_id IS NOT NULL
    ORDER BY gmv_minor DESC, p.id
    """
)
SERIES = text(
    f"""
    SELECT to_timestamp(floor(extract(epoch FROM o.created_at) / :bucket) * :bucket) AS bucket_start,
           s.product_id, count(*) AS orders,
           count(*) FILTER (WHERE o.status IN {SOLD}) AS paid_orders,
           coalesce(sum(o.quantity) FILTER (WHERE o.status IN {SOLD}), 0)::bigint AS units,
           coalesce(sum(o.amount_minor) FILTER (WHERE o.status IN {SOLD}), 0)::bigint AS gmv_minor
    FROM orders o JOIN skus s ON s.id = o.sku_id
    WHERE o.room_id = :room AND o.created_at >= :since AND o.created_at < :until
    GROUP BY 1, 2 ORDER BY 1, 2
    """
)

VIEWERS = text(
    """
    SELECT to_timestamp(floor(extract(epoch FROM bucket) / :bucket) * :bucket) AS bucket_start,
           max(viewers) AS viewers
    FROM room_viewer_samples
    WHERE room_id = :room AND bucket >= date_trunc('minute', CAST(:since AS timestamptz)) AND bucket < :until
    GROUP BY 1 ORDER BY 1
    """
)
STREAMS = text(
    """
    SELECT id, started_at, ended_at, video_codec, audio_codec FROM stream_sessions
    WHERE room_id = :room ORDER BY started_at DESC, id DESC LIMIT :limit
    """
)


async def room_streams(conn: AsyncConnection, room_id: int, limit: int = 100) -> list[dict[str, Any]]:
    """The room's stream sessions, newest first."""
    return [
        {
            "id": row.id,
            "started_at": row.started_at.isoformat(),
            "ended_at": iso(row.ended_at),
            "video_codec": row.video_codec,
            "audio_codec": row.audio_codec,
        }
        for row in await conn.execute(STREAMS, {"room": room_id, "limit": limit})
    ]


async def stream_window(
    conn: AsyncConnection, room_id: int, stream_session_id: int
) -> tuple[datetime, datetime]:
    row = (
        await conn.execute(
            text(
                "SELECT started_at, coalesce(ended_at, now()) AS ended_at FROM stream_sessions "
                "WHERE id = :id AND room_id = :room"
            ),
            {"id": stream_session_id, "room": room_id},
        )
    ).one_or_none()
    if row is None:
        raise AppError("not_found", "no such stream in this room")
    return row.started_at, row.ended_at


async def room_dashboard(
    conn: AsyncConnection, room_id: int, *, since: datetime, until: datetime, bucket_s: int
) -> dict[str, Any]:
    params = {"room": room_id, "since": since, "until": until, "bucket": bucket_s}
    viewers = [
        {"bucket_start": row.bucket_start.isoformat(), "viewers": row.viewers}
        for row in await conn.execute(VIEWERS, params)
    ]
    peak_viewers = max((row["viewers"] for row in viewers), default=0)
    products = []
    for row in await conn.execute(PER_PRODUCT, params):
        item = dict(row._mapping)
        item["tap_conversion"] = _ratio(row.buyers, row.tappers)
        item["viewer_conversion"] = _ratio(row.buyers, peak_viewers)
        products.append(item)
    series = [
        {**row._mapping, "bucket_start": row.bucket_start.isoformat()}
        for row in await conn.execute(SERIES, params)
    ]
    currency = await conn.scalar(
        text("SELECT m.currency FROM rooms r JOIN merchants m ON m.id = r.merchant_id WHERE r.id = :room"),
        params,
    )
    totals = {
        key: sum(p[key] for p in products) for key in ("taps", "orders", "paid_orders", "units", "gmv_minor")
    }
    return {
        "room_id": room_id,
        "since": since.isoformat(),
        "until": until.isoformat(),
        "bucket_s": bucket_s,
        "currency": currency,
        "totals": totals,
        "peak_viewers": peak_viewers,
        "products": products,
        "series": series,
        "viewers": viewers,
    }


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


CSV_FIELDS = ("bucket_start", "product_id", "orders", "paid_orders", "units", "gmv_minor", "viewers")


def series_csv(dashboard: dict[str, Any]) -> str:
    """One row per bucket and product with the bucket's viewers; a bucket with viewers and no
    orders gets one row without a product."""
    viewers = {row["bucket_start"]: row["viewers"] for row in dashboard["viewers"]}
    rows = [{**row, "viewers": viewers.get(row["bucket_start"], 0)} for row in dashboard["series"]]
    with_orders = {row["bucket_start"] for row in rows}
    rows += [
        {
            "bucket_start": start,
            "product_id": "",
            "orders": 0,
            "paid_orders": 0,
            "units": 0,
            "gmv_minor": 0,
            "viewers": count,
        }
        for start, count in viewers.items()
        if start not in with_orders
    ]
    rows.sort(key=lambda row: row["bucket_start"])
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: row[key] for key in CSV_FIELDS})
    return out.getvalue()


class Dashboard:
    """The room's sales figures and stream sessions, for the merchant's staff."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def streams(self, who: Principal, room_id: int) -> list[dict[str, Any]]:
        async with self._engine.connect() as conn:
            await authorize_on(conn, who, "sales.read", "rooms", room_id)
            return await room_streams(conn, room_id)

    async def figures(
        self,
        who: Principal,
        room_id: int,
        *,
        bucket_s: int,
        stream: int | None,
        since: datetime | None,
        until: datetime | None,
    ) -> dict[str, Any]:
        """The figures of one stream of the room, or of a time window (by default the last day)."""
        async with self._engine.connect() as conn:
            await authorize_on(conn, who, "sales.read", "rooms", room_id)
            if stream is not None:
                since, until = await stream_window(conn, room_id, stream)
            else:
                now = datetime.now(UTC)
                since = since or now - timedelta(days=1)
                until = until or now + timedelta(seconds=1)
            return await room_dashboard(conn, room_id, since=since, until=until, bucket_s=bucket_s)
