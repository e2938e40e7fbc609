// The console's sales chart on a plain canvas: orders (bars), revenue and viewers (lines) per
// time bucket, each on its own scale.

import { money, timeOfDay, toMillis } from "./format.js";

const ORDERS = "#d97706";
const REVENUE = "#059669";
const VIEWERS = "#2563eb";

// Sum the per-product series into one row per bucket and add the bucket's viewers, oldest first.
function buckets(series, viewers) {
  const byStart = new Map();
  const bucketAt = (start) => {
    const at = toMillis(start);
    if (!byStart.has(at)) byStart.set(at, { at, orders: 0, revenue: 0, viewers: 0 });
    return byStart.get(at);
  };
  for (const row of series) {
    const bucket = bucketAt(row.bucket_start);
    bucket.orders += row.orders;
    bucket.revenue += row.gmv_minor;
  }
  for (const row of viewers) bucketAt(row.bucket_start).viewers = row.viewers;
  return [...byStart.values()].sort((a, b) => a.at - b.at);
}

function line(ctx, points, color) {
  ctx.strokeStyle = color;
  ctx.lineWidth = 2;
  ctx.beginPath();
  points.forEach(([x, y], i) => (i === 0 ? ctx.moveTo(x, y) : ctx.lineTo(x, y)));
  ctx.stroke();
  ctx.lineWidth = 1;
}

export function drawChart(canvas, data) {
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  const pad = { left: 44, right: 70, top: 12, bottom: 28 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  ctx.clearRect(0, 0, width, height);
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillStyle = "#374151";
  const rows = buckets(data.series, data.viewers);
  if (!rows.length) {
    ctx.fillText("No orders or viewers yet.", pad.left, pad.top + plotH / 2);
    return;
  }
  const maxOrders = Math.max(1, ...rows.map((r) => r.orders));
  const maxRevenue = Math.max(1, ...rows.map((r) => r.revenue));
  const maxViewers = Math.max(1, ...rows.map((r) => r.viewers));
  const step = plotW / rows.length;
  const y = (value, max) => pad.top + plotH - (value / max) * plotH;

  ctx.strokeStyle = "#d1d5db";
  ctx.beginPath();
  ctx.moveTo(pad.left, pad.top + plotH);
  ctx.lineTo(pad.left + plotW, pad.top + plotH);
  ctx.stroke();

  ctx.fillStyle = ORDERS;
  rows.forEach((r, i) => {
    const top = y(r.orders, maxOrders);
    ctx.fillRect(pad.left + i * step + step * 0.2, top, step * 0.6, pad.top + plotH - top);
  });

  const middle = (i) => pad.left + i * step + step / 2;
  line(ctx, rows.map((r, i) => [middle(i), y(r.revenue, maxRevenue)]), REVENUE);
  line(ctx, rows.map((r, i) => [middle(i), y(r.viewers, maxViewers)]), VIEWERS);

  ctx.fillStyle = ORDERS;
  ctx.fillText(String(maxOrders), 4, pad.top + 10);
  ctx.fillStyle = REVENUE;
  ctx.fillText(money(maxRevenue, data.currency), pad.left + plotW + 6, pad.top + 10);
  ctx.fillStyle = VIEWERS;
  ctx.fillText(`${maxViewers} viewers`, pad.left + plotW + 6, pad.top + 26);
  ctx.fillStyle = "#374151";
  ctx.fillText(timeOfDay(rows[0].at), pad.left, height - 8);
  if (rows.length > 1) {
    const last = timeOfDay(rows[rows.length - 1].at);
    ctx.fillText(last, pad.left + plotW - ctx.measureText(last).width, height - 8);
  }
}
