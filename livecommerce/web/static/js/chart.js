// The console's sales chart on a plain canvas: orders (bars) and revenue (line) per time bucket.

import { money, timeOfDay, toMillis } from "./format.js";

const ORDERS = "#d97706";
const REVENUE = "#059669";

// Sum the per-product series into one row per bucket, oldest first.
function buckets(series) {
  const byStart = new Map();
  for (const row of series) {
    const at = toMillis(row.bucket_start);
    const bucket = byStart.get(at) || { at, orders: 0, revenue: 0 };
    bucket.orders += row.orders;
    bucket.revenue += row.gmv_minor;
    byStart.set(at, bucket);
  }
  return [...byStart.values()].sort((a, b) => a.at - b.at);
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
  const rows = buckets(data.series);
  if (!rows.length) {
    ctx.fillText("No orders yet.", pad.left, pad.top + plotH / 2);
    return;
  }
  const maxOrders = Math.max(1, ...rows.map((r) => r.orders));
  const maxRevenue = Math.max(1, ...rows.map((r) => r.revenue));
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

  ctx.strokeStyle = REVENUE;
  ctx.lineWidth = 2;
  ctx.beginPath();
  rows.forEach((r, i) => {
    const x = pad.left + i * step + step / 2;
    const top = y(r.revenue, maxRevenue);
    if (i === 0) ctx.moveTo(x, top);
    else ctx.lineTo(x, top);
  });
  ctx.stroke();
  ctx.lineWidth = 1;

  ctx.fillStyle = ORDERS;
  ctx.fillText(String(maxOrders), 4, pad.top + 10);
  ctx.fillStyle = REVENUE;
  ctx.fillText(money(maxRevenue, data.currency), pad.left + plotW + 6, pad.top + 10);
  ctx.fillStyle = "#374151";
  ctx.fillText(timeOfDay(rows[0].at), pad.left, height - 8);
  if (rows.length > 1) {
    const last = timeOfDay(rows[rows.length - 1].at);
    ctx.fillText(last, pad.left + plotW - ctx.measureText(last).width, height - 8);
  }
}
