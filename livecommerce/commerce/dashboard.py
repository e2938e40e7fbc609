"""Sales figures for one room (or one stream of it): GMV, orders, units, conversion per product card.

Conversion of a product card is paying buyers ÷ viewers who tapped Buy on it. Money counts paid
orders only (refunded ones are subtracted by leaving them out). The time series has one row per
bucket and product, which is also the CSV export.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from livecommerce.errors import AppError

PER_PRODUCT = text(
    """
    WITH taps AS (
        SELECT s.product_id, count(*) AS taps, count(DISTINCT a.user_id) AS tappers
        FROM order_attempts a JOIN flash_sales f ON f.id = a.sale_id JOIN skus s ON s.id = f.sku_id
        WHERE f.room_id = :room AND a.created_at >= :since AND a.created_at < :until
        GROUP BY s.product_id
    ), sold AS (
        SELECT s.product_id, count(*) AS orders,
               count(*) FILTER (WHERE o.status = 'paid') AS paid_orders,
               count(DISTINCT o.user_id) FILTER (WHERE o.status = 'paid') AS buyers,
               coalesce(sum(o.quantity) FILTER (WHERE o.status = 'paid'), 0)::bigint AS units,
               coalesce(sum(o.amount_minor) FILTER (WHERE o.status = 'paid'), 0)::bigint AS gmv_minor
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
    """
    SELECT to_timestamp(floor(extract(epoch FROM o.created_at) / :bucket) * :bucket) AS bucket_start,
           s.product_id, count(*) AS orders,
           count(*) FILTER (WHERE o.status = 'paid') AS paid_orders,
           coalesce(sum(o.quantity) FILTER (WHERE o.status = 'paid'), 0)::bigint AS units,
           coalesce(sum(o.amount_minor) FILTER (WHERE o.status = 'paid'), 0)::bigint AS gmv_minor
    FROM orders o JOIN skus s ON s.id = o.sku_id
    WHERE o.room_id = :room AND o.created_at >= :since AND o.created_at < :until
    GROUP BY 1, 2 ORDER BY 1, 2
    """
)


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
    products = []
    for row in await conn.execute(PER_PRODUCT, params):
        item = dict(row._mapping)
        item["conversion"] = round(row.buyers / row.tappers, 4) if row.tappers else None
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
        "products": products,
        "series": series,
    }


CSV_FIELDS = ("bucket_start", "product_id", "orders", "paid_orders", "units", "gmv_minor")


def series_csv(dashboard: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in dashboard["series"]:
        writer.writerow({key: row[key] for key in CSV_FIELDS})
    return out.getvalue()
