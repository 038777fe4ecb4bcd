// Text shown one token per <span>, coloured by a value, with a tooltip on hover.

const tooltip = () => document.getElementById("tooltip");

export function visible(text) {  // newlines and tabs stay visible inside shaded spans
  return text.replace(/\t/g, "→\t").replace(/\n/g, "↵\n");
}

export function tokenSpan(text, color, tip) {
  const span = document.createElement("span");
  span.className = "tok";
  span.textContent = visible(text);
  span.style.background = color;
  if (tip) span.dataset.tip = tip;
  return span;
}

// Probability p in [0, 1]: white when likely, red when unlikely.
export function probColor(p) { return `rgba(230, 60, 50, ${(0.75 * (1 - p)).toFixed(3)})`; }

// Surprise in nats: white at 0, red from about 6 nats.
export function surpriseColor(s) { return `rgba(230, 60, 50, ${Math.min(0.8, s / 7).toFixed(3)})`; }

// A signed value in [-1, 1]: blue for negative, red for positive (as Karpathy et al. draw units).
export function signedColor(v, scale = 1) {
  const a = Math.min(1, Math.abs(v) / scale) * 0.8;
  return v >= 0 ? `rgba(220, 50, 40, ${a.toFixed(3)})` : `rgba(40, 90, 220, ${a.toFixed(3)})`;
}

// Saliency: green supports the label, red speaks against it.
export function saliencyColor(v, scale) {
  const a = Math.min(1, Math.abs(v) / (scale || 1)) * 0.8;
  return v >= 0 ? `rgba(40, 170, 70, ${a.toFixed(3)})` : `rgba(220, 50, 40, ${a.toFixed(3)})`;
}

export function topTip(top, actual) {
  const rows = top.map(([t, p]) => `${JSON.stringify(t)}  ${(100 * p).toFixed(1)}%`);
  return (actual ? actual + "\n" : "") + "top 5:\n" + rows.join("\n");
}

document.addEventListener("mouseover", e => {
  const t = tooltip();
  const tip = e.target.dataset?.tip;
  if (!tip) { t.hidden = true; return; }
  t.textContent = tip; t.hidden = false;
  const r = e.target.getBoundingClientRect();
  t.style.left = `${window.scrollX + r.left}px`; t.style.top = `${window.scrollY + r.bottom + 4}px`;
});
