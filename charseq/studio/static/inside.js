// Look inside a language model: surprise per character, a unit's activation, units found automatically.
import {postJSON} from "./api.js";
import {signedColor, surpriseColor, tokenSpan, topTip} from "./shade.js";
import {$, fillRunSelect, num, setStatus} from "./ui.js";

export class InsideView {
  constructor(state) {
    this.runs = []; this.report = null;
    $("in-go").addEventListener("click", () => this.analyze());
    $("in-run").addEventListener("change", () => this.fillLayers());
    $("in-layer").addEventListener("change", () => this.report && this.analyze());
    $("in-mode").addEventListener("change", () => this.draw());
    $("in-unit").addEventListener("input", () => { $("in-mode").value = "unit"; this.draw(); });
  }

  setRuns(runs) { this.runs = runs.filter(r => r.task === "lm"); fillRunSelect($("in-run"), this.runs); this.fillLayers(); }

  fillLayers() {
    const run = this.runs.find(r => r.name === $("in-run").value);
    const select = $("in-layer"), keep = select.value;
    select.innerHTML = "";
    for (let i = 0; i < (run?.layers || 1); i++) select.append(new Option(`${i}`, `${i}`));
    if (keep && +keep < select.options.length) select.value = keep;
  }

  async analyze() {
    setStatus("in-status", "analyzing…");
    try {
      this.report = await postJSON("/api/analyze", {run: $("in-run").value, text: $("in-text").value, layer: num("in-layer")});
      $("in-unit").max = this.report.units - 1;
      setStatus("in-status", `mean surprise ${this.report.mean_surprise} nats/character; layer ${this.report.layer} has ${this.report.units} units`);
      this.listUnits();
      this.draw();
    } catch (e) { setStatus("in-status", e.message, true); }
  }

  listUnits() {
    const list = $("in-units");
    list.innerHTML = "";
    for (const u of this.report.found_units) {
      const li = document.createElement("li");
      li.innerHTML = `<a href="javascript:void 0">unit ${u.unit}</a>: ${u.description} <span class="hint">(r = ${u.correlation.toFixed(2)})</span>`;
      li.querySelector("a").addEventListener("click", () => { $("in-unit").value = u.unit; $("in-mode").value = "unit"; this.draw(); });
      list.append(li);
    }
  }

  draw() {
    if (!this.report) return;
    const out = $("in-output");
    out.innerHTML = "";
    const unit = Math.max(0, Math.min(num("in-unit"), this.report.units - 1));
    const acts = this.report.activations[unit];
    this.report.tokens.forEach((t, i) => {
      const tip = topTip(t.top, `${JSON.stringify(t.text)}: p = ${(100 * t.p).toFixed(1)}%, surprise ${t.surprise} nats` +
                         `\nunit ${unit}: ${acts[i].toFixed(3)}`);
      const color = $("in-mode").value === "unit" ? signedColor(acts[i]) : surpriseColor(t.surprise);
      out.append(tokenSpan(t.text, color, tip));
    });
  }
}
