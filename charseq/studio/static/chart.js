// A small line chart on a <canvas>: several series, linear axes, a legend. No library needed.

export const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
                       "#17becf", "#7f7f7f", "#bcbd22"];

function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) { hi = lo + 1; }
  const raw = (hi - lo) / count, mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map(m => m * mag).find(s => s >= raw);
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-12; t += step) ticks.push(+t.toPrecision(12));
  return ticks;
}

// series: [{label, color, dash: bool, points: [[x, y], ...]}]
export function lineChart(canvas, series, {xLabel = "", yRange = null} = {}) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 56, R = 12, T = 12, B = 40;
  ctx.clearRect(0, 0, W, H);
  const pts = series.flatMap(s => s.points).filter(p => Number.isFinite(p[1]));
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillStyle = "#666";
  if (!pts.length) { ctx.fillText("no data yet", W / 2 - 30, H / 2); return; }
  let [x0, x1] = [Math.min(...pts.map(p => p[0])), Math.max(...pts.map(p => p[0]))];
  let [y0, y1] = yRange || [Math.min(...pts.map(p => p[1])), Math.max(...pts.map(p => p[1]))];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
  const pad = (y1 - y0) * 0.05; if (!yRange) { y0 -= pad; y1 += pad; }
  const X = x => L + (x - x0) / (x1 - x0) * (W - L - R), Y = y => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  ctx.strokeStyle = "#ddd"; ctx.lineWidth = 1;
  for (const t of niceTicks(y0, y1)) {
    ctx.beginPath(); ctx.moveTo(L, Y(t)); ctx.lineTo(W - R, Y(t)); ctx.stroke();
    ctx.fillText(String(t), 4, Y(t) + 4);
  }
  for (const t of niceTicks(x0, x1, 6)) ctx.fillText(String(t), X(t) - 8, H - B + 16);
  ctx.fillText(xLabel, W / 2 - 12, H - 6);
  ctx.strokeStyle = "#999"; ctx.strokeRect(L, T, W - L - R, H - T - B);
  for (const s of series) {
    const p = s.points.filter(q => Number.isFinite(q[1]));
    if (!p.length) continue;
    ctx.strokeStyle = s.color; ctx.lineWidth = 2; ctx.setLineDash(s.dash ? [5, 4] : []);
    ctx.beginPath(); p.forEach(([x, y], i) => i ? ctx.lineTo(X(x), Y(y)) : ctx.moveTo(X(x), Y(y))); ctx.stroke();
    if (p.length === 1) { ctx.fillStyle = s.color; ctx.fillRect(X(p[0][0]) - 2, Y(p[0][1]) - 2, 4, 4); }
  }
  ctx.setLineDash([]);
  let ly = T + 14;
  for (const s of series.filter(s => s.label)) {
    ctx.fillStyle = s.color; ctx.fillRect(W - R - 170, ly - 9, 10, 10);
    ctx.fillStyle = "#333"; ctx.fillText(s.label.slice(0, 26), W - R - 155, ly); ly += 15;
  }
}
