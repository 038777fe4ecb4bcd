// Text shown one token per <span>, coloured by a value, with a tooltip on hover, tap or keyboard focus.

const tooltip = () => document.getElementById("tooltip");

export function visible(text) {  // newlines and tabs stay visible inside shaded spans
  return text.replace(/\t/g, "→\t").replace(/\n/g, "↵\n");
}

export function visibleLabel(text) {  // a character on its own (a column header): spaces show too
  return visible(text).replace(/ /g, "␣");
}

// Characters named in a line of text, each quoted: "ש" "ל" "ו". Each is isolated left to right (U+2066 ...
// U+2069), since right-to-left letters with only quotes and spaces between them would be laid out as one
// right-to-left run, the list reversed and its quotes paired with the wrong characters.
export function characterList(chars) {
  return chars.map(c => `\u2066${JSON.stringify(c)}\u2069`).join(" ");
}

export function tokenSpan(text, color, tip, className = "") {
  const span = document.createElement("span");
  span.className = `tok ${className}`.trim();
  span.textContent = visible(text);
  span.style.background = color;
  if (tip) { span.dataset.tip = tip; span.tabIndex = -1; }
  return span;
}

// Surprise in nats (−log p): transparent at 0, full red from SURPRISE_MAX nats. Log-scaled in p, so a
// large vocabulary does not make every character red (as shading linearly in p did).
export const SURPRISE_MAX = 6;
export function surpriseColor(s) { return `rgba(230, 60, 50, ${(0.8 * Math.min(1, Math.max(0, s) / SURPRISE_MAX)).toFixed(3)})`; }
export const surpriseOf = p => -Math.log(Math.max(p, 1e-12));

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

// A colour legend: a gradient strip from `colors` with labels under its ends (and middle).
export function colorScale(box, title, colors, labels) {
  box.innerHTML = "";
  const strip = document.createElement("span");
  strip.className = "strip";
  strip.style.background = `linear-gradient(to right, ${colors.join(", ")})`;
  const ticks = document.createElement("span");
  ticks.className = "ticks";
  for (const label of labels) ticks.append(Object.assign(document.createElement("span"), {textContent: label}));
  box.append(Object.assign(document.createElement("span"), {className: "title", textContent: title}), strip, ticks);
}

export function surpriseScale(box) {
  colorScale(box, "surprise (−log p)", [surpriseColor(0), surpriseColor(SURPRISE_MAX / 2), surpriseColor(SURPRISE_MAX)],
             ["0 nats (p = 100%)", `${SURPRISE_MAX / 2} (p = 5%)`, `≥ ${SURPRISE_MAX} (p ≤ 0.25%)`]);
}

// The chosen token first, then the top 5 (the chosen one marked when it is among them).
export function topTip(top, chosenText, actual) {
  const rows = top.map(([t, p]) => `${t === chosenText ? "▸" : " "} ${JSON.stringify(t)}  ${(100 * p).toFixed(2)}%`);
  return (actual ? actual + "\n" : "") + "top 5:\n" + rows.join("\n");
}

// ------------------------------------------------------------------ tooltips
// Any element with data-tip shows it on mouse hover, on keyboard focus and on tap. Inside a
// .tipgroup the arrow keys move between the tips (one tab stop per group: a roving tabindex).
let pinned = null;

function place(el) {
  const t = tooltip();
  t.textContent = el.dataset.tip; t.hidden = false;
  const r = el.getBoundingClientRect(), width = t.offsetWidth, height = t.offsetHeight;
  const left = Math.max(4, Math.min(r.left, document.documentElement.clientWidth - width - 4));
  const below = r.bottom + 4 + height < window.innerHeight || r.top - height - 4 < 0;
  t.style.left = `${window.scrollX + left}px`;
  t.style.top = `${window.scrollY + (below ? r.bottom + 4 : r.top - height - 4)}px`;
}

function hide() { tooltip().hidden = true; pinned = null; }

export function tipGroup(container) {  // after filling `container`: its first tip is its tab stop
  container.classList.add("tipgroup");
  const first = container.querySelector("[data-tip]");
  container.querySelectorAll("[data-tip]").forEach(el => { el.tabIndex = el === first ? 0 : -1; });
}

document.addEventListener("mouseover", e => {
  const el = e.target.closest?.("[data-tip]");
  if (el) place(el); else if (pinned) place(pinned); else tooltip().hidden = true;
});
document.addEventListener("focusin", e => {
  const el = e.target.closest?.("[data-tip]");
  if (el) { pinned = el; place(el); }
});
document.addEventListener("focusout", e => { if (e.target === pinned) hide(); });
document.addEventListener("click", e => {  // a tap on a touch screen
  const el = e.target.closest?.("[data-tip]");
  if (el) { pinned = el; place(el); } else if (pinned) hide();
});
document.addEventListener("keydown", e => {
  if (e.key === "Escape") { hide(); return; }
  const el = e.target.closest?.(".tipgroup [data-tip]");
  if (!el || !["ArrowRight", "ArrowLeft", "ArrowDown", "ArrowUp", "Home", "End"].includes(e.key)) return;
  const all = [...el.closest(".tipgroup").querySelectorAll("[data-tip]")], i = all.indexOf(el);
  const rowLength = Number(el.closest(".tipgroup").dataset.row || 0);
  const step = {ArrowRight: 1, ArrowLeft: -1, ArrowDown: rowLength || 1, ArrowUp: -(rowLength || 1)}[e.key];
  const next = all[e.key === "Home" ? 0 : e.key === "End" ? all.length - 1 : Math.max(0, Math.min(all.length - 1, i + step))];
  e.preventDefault();
  el.tabIndex = -1; next.tabIndex = 0; next.focus();
});
window.addEventListener("scroll", () => { if (!tooltip().hidden && pinned) place(pinned); }, {passive: true});
