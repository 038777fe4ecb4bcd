// Classifier: a text with its occlusion saliency, or a 28x28 drawing read row by row.
import {postJSON} from "./api.js";
import {COLORS, lineChart} from "./chart.js";
import {saliencyColor, tokenSpan} from "./shade.js";
import {$, fillRunSelect, setStatus} from "./ui.js";

export class ClassifyView {
  constructor(state) {
    this.runs = [];
    $("cl-go").addEventListener("click", () => this.classifyText());
    $("cl-run").addEventListener("change", () => this.switchKind());
    $("cl-clear").addEventListener("click", () => { this.clear(); $("cl-probs").innerHTML = ""; });
    this.setUpCanvas();
  }

  setRuns(runs) { this.runs = runs.filter(r => r.task === "classifier"); fillRunSelect($("cl-run"), this.runs); this.switchKind(); }

  switchKind() {
    const run = this.runs.find(r => r.name === $("cl-run").value);
    const image = run?.kind === "image classifier";
    $("cl-text-ui").hidden = image; $("cl-image-ui").hidden = !image;
    $("cl-probs").innerHTML = "";
  }

  showProbabilities(report) {
    const box = $("cl-probs");
    box.innerHTML = "";
    const entries = Object.entries(report.probabilities).sort((a, b) => b[1] - a[1]);
    for (const [label, p] of entries) {
      const row = document.createElement("div");
      row.className = "bar" + (label === report.label ? " chosen" : "");
      row.innerHTML = `<span class="label"></span><span class="fill" style="width:${(p * 100).toFixed(1)}%"></span><span class="value">${(100 * p).toFixed(1)}%</span>`;
      row.querySelector(".label").textContent = label;
      box.append(row);
    }
  }

  async classifyText() {
    setStatus("cl-status", "classifying…");
    try {
      const report = await postJSON("/api/classify", {run: $("cl-run").value, text: $("cl-text").value});
      setStatus("cl-status", `${report.label} (${(100 * report.probability).toFixed(1)}%); saliency by ${report.method}`);
      this.showProbabilities(report);
      const out = $("cl-saliency"), scale = Math.max(1e-6, ...report.saliency.map(Math.abs));
      out.innerHTML = "";
      report.tokens.forEach((t, i) => out.append(tokenSpan(t, saliencyColor(report.saliency[i], scale),
        `${JSON.stringify(t)}: ${report.label} drops by ${(100 * report.saliency[i]).toFixed(2)} points without it`)));
    } catch (e) { setStatus("cl-status", e.message, true); }
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

  clear() { this.pixels.fill(0); this.drawPixels(); lineChart($("cl-rows"), [], {}); }

  drawPixels() {
    const ctx = this.ctx;
    for (let j = 0; j < 28; j++) for (let i = 0; i < 28; i++) {
      const v = Math.round(255 * (1 - this.pixels[j * 28 + i]));
      ctx.fillStyle = `rgb(${v},${v},${v})`; ctx.fillRect(i * 10, j * 10, 10, 10);
    }
  }

  // Draw an image given as 28 rows of 28 values 0-255 (used by the tests and for examples).
  setImage(rows) { rows.forEach((row, j) => row.forEach((v, i) => { this.pixels[j * 28 + i] = v / 255; })); this.drawPixels(); }

  async classifyImage() {
    const image = [];
    for (let j = 0; j < 28; j++) image.push(Array.from(this.pixels.slice(j * 28, j * 28 + 28), v => Math.round(v * 255)));
    setStatus("cl-img-status", "classifying…");
    try {
      const report = await postJSON("/api/classify", {run: $("cl-run").value, image});
      setStatus("cl-img-status", `${report.label} (${(100 * report.probability).toFixed(1)}%)`);
      this.showProbabilities(report);
      const series = report.labels.map((label, k) => ({label, color: COLORS[k % COLORS.length],
        points: report.rows.map((r, i) => [i + 1, r[k]])}));
      lineChart($("cl-rows"), series, {xLabel: "rows read", yRange: [0, 1]});
    } catch (e) { setStatus("cl-img-status", e.message, true); }
  }
}
