// Classifier: a text with its occlusion saliency, or a 28x28 drawing read row by row; examples, the confusion
// matrix and the misclassified examples of the run's validation data.
import {getJSON, postJSON} from "/static/api.js";
import {available, classColor, lineChart} from "/static/chart.js";
import {characterList, colorScale, saliencyColor, tipGroup, tokenSpan} from "/static/shade.js";
import {$, bindControls, ctrlEnter, currentPage, exampleLabel, fillRunSelect, setEmpty, setStatus, showExamples} from "/static/ui.js";

const UNKNOWN_PIECES = new Set(["\ufffd", "<unk>"]);
const pct = p => `${(100 * p).toFixed(1)}%`;

// A 28x28 image (rows of 0-255) on a small canvas, ink dark on light as on the drawing area.
function imageCanvas(rows) {
  const canvas = Object.assign(document.createElement("canvas"), {width: 28, height: 28});
  const ctx = canvas.getContext("2d"), data = ctx.createImageData(28, 28);
  rows.forEach((row, j) => row.forEach((v, i) => {
    const k = 4 * (j * 28 + i);
    data.data[k] = data.data[k + 1] = data.data[k + 2] = 255 - v; data.data[k + 3] = 255;
  }));
  ctx.putImageData(data, 0, 0);
  return canvas;
}

// What occluding one character did to the predicted label's probability, in words.
export function saliencyTip(token, label, p, drop) {
  const without = pct(Math.min(1, Math.max(0, p - drop))), points = Math.abs(100 * drop).toFixed(1);
  if (Math.abs(drop) < 0.0005) return `${JSON.stringify(token)}: no effect on ${label} (${pct(p)} with or without it)`;
  return drop > 0 ? `${JSON.stringify(token)} supports ${label}: without it ${label} would be ${without} instead of ${pct(p)} (${points} points less)`
    : `${JSON.stringify(token)} speaks against ${label}: without it ${label} would be ${without} instead of ${pct(p)} (${points} points more)`;
}

export default class ClassifyView {
  constructor(state, task) {
    this.task = task;
    this.runs = [];
    $("cl-go").addEventListener("click", () => this.classifyText());
    ctrlEnter("cl-text", "cl-go");
    $("cl-run").addEventListener("change", () => { this.switchKind(); this.validation(); });
    $("cl-clear").addEventListener("click", () => { this.clear(); $("cl-probs").innerHTML = ""; setStatus("cl-img-status", ""); });
    this.url = bindControls("classify", {run: "cl-run", text: "cl-text"});
    // A link (or a reload) opens with its text classified, as picking an example does, once its run is listed.
    this.fromLink = location.hash.startsWith("#classify?");
    if (this.fromLink) this.url.restore(new URLSearchParams(location.hash.split("?")[1]));
    $("cl-text").addEventListener("input", () => this.url.save());
    this.setUpCanvas();
  }

  setRuns(runs) {
    this.runs = runs.filter(r => r.task === this.task);
    if (fillRunSelect($("cl-run"), this.runs)) this.switchKind();
    setEmpty("cl", !this.runs.length);
    if (currentPage() === "classify") this.validation();
    if (this.fromLink && $("cl-run").value) { this.fromLink = false; this.classifyLinked(); }
  }

  follow(params) { this.url.apply(params); this.classifyLinked(); }

  classifyLinked() {  // a link names a text, not a drawing: an image run waits for one
    const run = this.runs.find(r => r.name === $("cl-run").value);
    if (run && run.kind !== "image classifier" && $("cl-text").value.trim()) this.classifyText();
  }

  shown() { this.url.save(); this.validation(); }

  // Put an example (text or image) in and classify it.
  pick(example) {
    if (example.image) { this.setImage(example.image); this.classifyImage(); }
    else { $("cl-text").value = example.text; this.url.save(); this.classifyText(); }
  }

  // The run's validation examples, its confusion matrix and what it gets wrong (loaded once per run).
  async validation() {
    const run = $("cl-run").value;
    if (this.validated === run) return;
    this.validated = run;
    const render = (e, button) => {
      if (e.image) { button.replaceChildren(imageCanvas(e.image)); button.title = `a ${e.label} from the validation images`; button.setAttribute("aria-label", button.title); }
      else exampleLabel(button, e.text);
    };
    showExamples($("cl-examples"), run, render, e => this.pick(e));
    $("cl-confusion").replaceChildren(); $("cl-wrong").replaceChildren(); $("cl-wrong-title").hidden = true;
    if (!run) { setStatus("cl-val-status", ""); return; }
    setStatus("cl-val-status", "classifying the validation data…");
    try {
      const report = await getJSON(`/api/confusion?run=${encodeURIComponent(run)}`);
      if ($("cl-run").value !== run || this.validated !== run) return;  // another run was chosen meanwhile
      if (!report.examples) { setStatus("cl-val-status", "this run has no validation data (trained with --val-fraction 0)"); return; }
      setStatus("cl-val-status", `accuracy ${pct(report.accuracy)} on ${report.examples.toLocaleString("en")} validation examples; ` +
        `${report.misclassified_count.toLocaleString("en")} misclassified`);
      this.showConfusion(report);
      this.showMisclassified(report);
    } catch (e) { if ($("cl-run").value === run) setStatus("cl-val-status", e.message, true); }
  }

  showConfusion(report) {
    if (!available()) return;
    const labels = report.labels, m = report.confusion_matrix;
    const share = m.map(row => { const n = row.reduce((a, b) => a + b, 0) || 1; return row.map(v => v / n); });
    const style = getComputedStyle(document.body), fg = style.getPropertyValue("--fg").trim() || "#222";
    const side = Math.min(520, 140 + 34 * labels.length);
    window.Plotly.react($("cl-confusion"), [{
      type: "heatmap", z: share, x: labels, y: labels, customdata: m, colorscale: "Blues", reversescale: true, zmin: 0, zmax: 1,
      text: m.map(row => row.map(String)), texttemplate: labels.length <= 12 ? "%{text}" : "",
      hovertemplate: "true %{y}, predicted %{x}: %{customdata} (%{z:.1%} of %{y})<extra></extra>",
      colorbar: {title: {text: "share of the true class", side: "right"}, tickformat: ".0%", thickness: 12},
    }], {
      height: side, margin: {l: 60, r: 10, t: 30, b: 60}, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      font: {color: fg, size: 12}, title: {text: "confusion matrix", font: {size: 14}, x: 0, xanchor: "left"},
      xaxis: {title: {text: "predicted"}, type: "category", automargin: true},
      yaxis: {title: {text: "true"}, type: "category", autorange: "reversed", automargin: true},
    }, {responsive: true, displaylogo: false, toImageButtonOptions: {format: "png", filename: "confusion", scale: 2}});
  }

  showMisclassified(report) {
    const box = $("cl-wrong");
    box.replaceChildren();
    $("cl-wrong-title").hidden = !report.misclassified.length;
    for (const e of report.misclassified) {
      const button = Object.assign(document.createElement("button"), {type: "button"});
      const caption = `${e.label} → ${e.predicted} (${pct(e.probability)})${e.times > 1 ? ` ×${e.times}` : ""}`;
      if (e.image) button.append(imageCanvas(e.image), caption);
      else button.append(Object.assign(document.createElement("b"), {textContent: caption}), document.createElement("br"), e.text);
      button.title = `true ${e.label}, predicted ${e.predicted} with ${pct(e.probability)}`
        + `${e.times > 1 ? `, ${e.times} times in the validation data` : ""}; click to classify it`;
      button.addEventListener("click", () => this.pick(e));
      box.append(button);
    }
  }

  switchKind() {
    const run = this.runs.find(r => r.name === $("cl-run").value);
    const image = run?.kind === "image classifier";
    $("cl-text-ui").hidden = image; $("cl-image-ui").hidden = !image;
    $("cl-probs").innerHTML = ""; $("cl-saliency").innerHTML = ""; $("cl-scale").innerHTML = "";
    setStatus("cl-status", ""); setStatus("cl-img-status", "");
    if (image) this.clear();
  }

  showProbabilities(report) {
    const box = $("cl-probs");
    box.innerHTML = "";
    const entries = Object.entries(report.probabilities).sort((a, b) => b[1] - a[1]);
    for (const [label, p] of entries) {
      const row = document.createElement("div");
      row.className = "bar" + (label === report.label ? " chosen" : "");
      row.innerHTML = `<span class="label"></span><span class="track"><span class="fill" style="width:${(p * 100).toFixed(1)}%"></span></span><span class="value">${pct(p)}</span>`;
      row.querySelector(".label").textContent = label;
      row.querySelector(".label").title = label;
      box.append(row);
    }
  }

  async classifyText() {
    setStatus("cl-status", "classifying…");
    const text = $("cl-text").value, asked = this.asked = {};  // only the latest request's answer is shown
    try {
      const report = await postJSON("/api/classify", {run: $("cl-run").value, text});
      if (this.asked !== asked) return;
      this.showProbabilities(report);
      const out = $("cl-saliency"), scale = Math.max(1e-6, ...report.saliency.map(Math.abs));
      const chars = [...text], aligned = report.tokens.length === chars.length;  // a character vocabulary
      let unknown = [];
      out.innerHTML = "";
      report.tokens.forEach((t, i) => {
        if (i >= report.read) {  // past the run's --max-len: cut before the model reads it
          out.append(tokenSpan(aligned ? chars[i] : t, "transparent",
                               `${JSON.stringify(t)}: not read (the model reads the first ${report.read})`, "unread"));
          return;
        }
        const isUnknown = UNKNOWN_PIECES.has(t) && !(aligned && chars[i] === t);
        const shown = isUnknown && aligned ? chars[i] : t;  // the character as typed, not a replacement mark
        if (isUnknown) unknown.push(shown);
        const tip = saliencyTip(shown, report.label, report.probability, report.saliency[i]) +
          (isUnknown ? "\nnot in the model's vocabulary: read as unknown" : "");
        out.append(tokenSpan(shown, saliencyColor(report.saliency[i], scale), tip, isUnknown ? "unknown" : ""));
      });
      tipGroup(out);
      const points = (100 * scale).toFixed(1);
      colorScale($("cl-scale"), `change in P(${report.label}) without the character`,
                 [saliencyColor(-scale, scale), saliencyColor(0, scale), saliencyColor(scale, scale)],
                 [`against: +${points} points`, "no effect", `supports: −${points} points`]);
      unknown = [...new Set(unknown)];
      const cut = report.tokens.length - report.read;
      setStatus("cl-status", `${report.label} (${pct(report.probability)}); saliency by ${report.method}` +
        (cut ? `; the last ${cut} ${aligned ? "characters" : "pieces"} are past the run's --max-len of ${report.read}, ` +
               "not read (greyed)" : "") +
        (unknown.length ? `; not in the model's vocabulary, read as unknown (marked): ${characterList(unknown)}` : ""));
    } catch (e) { if (this.asked === asked) setStatus("cl-status", e.message, true); }
  }

  // 28x28 pixels drawn at 10x; a soft round brush, as MNIST digits are anti-aliased strokes.
  setUpCanvas() {
    const canvas = $("cl-canvas"), ctx = canvas.getContext("2d");
    this.pixels = new Float32Array(28 * 28);
    let drawing = false;
    const paint = e => {
      const r = canvas.getBoundingClientRect();
      const x = (e.clientX - r.left) / r.width * 28, y = (e.clientY - r.top) / r.height * 28;
      for (let j = Math.floor(y - 2); j <= y + 2; j++) for (let i = Math.floor(x - 2); i <= x + 2; i++) {
        if (i < 0 || j < 0 || i >= 28 || j >= 28) continue;
        const d = Math.hypot(i + 0.5 - x, j + 0.5 - y), v = Math.max(0, Math.min(1, 1.6 - d));
        this.pixels[j * 28 + i] = Math.max(this.pixels[j * 28 + i], v);
      }
      this.drawPixels();
    };
    canvas.addEventListener("pointerdown", e => { drawing = true; paint(e); });
    canvas.addEventListener("pointermove", e => drawing && paint(e));
    window.addEventListener("pointerup", () => { if (drawing) { drawing = false; this.classifyImage(); } });
    this.ctx = ctx;
    this.clear();
  }

  clear() {
    this.pixels.fill(0); this.drawPixels();
    if (available()) lineChart($("cl-rows"), [], {xTitle: "rows read", yTitle: "probability", yRange: [0, 1], file: "rows", legend: false});
  }

  drawPixels() {
    const ctx = this.ctx;
    for (let j = 0; j < 28; j++) for (let i = 0; i < 28; i++) {
      const v = Math.round(255 * (1 - this.pixels[j * 28 + i]));
      ctx.fillStyle = `rgb(${v},${v},${v})`; ctx.fillRect(i * 10, j * 10, 10, 10);
    }
    if (!this.pixels.some(v => v > 0)) {  // a blank canvas says what to do with it
      ctx.fillStyle = "#888"; ctx.font = "20px system-ui, sans-serif"; ctx.textAlign = "center";
      ctx.fillText("draw a digit here", 140, 135);
      ctx.font = "14px system-ui, sans-serif";
      ctx.fillText("(mouse, pen or finger)", 140, 160);
    }
  }

  // Draw an image given as 28 rows of 28 values 0-255 (used by the tests and for examples).
  setImage(rows) { rows.forEach((row, j) => row.forEach((v, i) => { this.pixels[j * 28 + i] = v / 255; })); this.drawPixels(); }

  async classifyImage() {
    const image = [];
    for (let j = 0; j < 28; j++) image.push(Array.from(this.pixels.slice(j * 28, j * 28 + 28), v => Math.round(v * 255)));
    setStatus("cl-img-status", "classifying…");
    const asked = this.asked = {};
    try {
      const report = await postJSON("/api/classify", {run: $("cl-run").value, image});
      if (this.asked !== asked) return;
      setStatus("cl-img-status", `${report.label} (${pct(report.probability)})`);
      this.showProbabilities(report);
      const series = report.labels.map((label, k) => ({name: label, color: classColor(k),
        x: report.rows.map((r, i) => i + 1), y: report.rows.map(r => r[k])}));
      if (available()) lineChart($("cl-rows"), series, {xTitle: "rows read", yTitle: "probability", yRange: [0, 1], file: "rows"});
    } catch (e) { if (this.asked === asked) setStatus("cl-img-status", e.message, true); }
  }
}
