// Look inside a language model: surprise per character, a unit's activation, units found automatically.
import {postJSON} from "/static/api.js";
import {characterList, colorScale, signedColor, surpriseColor, surpriseScale, tipGroup, tokenSpan, topTip}
  from "/static/shade.js";
import {$, bindControls, ctrlEnter, exampleLabel, fillRunSelect, num, setEmpty, setStatus, showExamples} from "/static/ui.js";

const FEW_CHARACTERS = 400;  // correlations over fewer characters than this are mostly chance

export default class InsideView {
  constructor(state, task) {
    this.task = task;
    this.runs = []; this.report = null;
    $("in-go").addEventListener("click", () => this.analyze());
    ctrlEnter("in-text", "in-go");
    $("in-run").addEventListener("change", () => { this.fillLayers(); this.reset(); this.examples(); });
    $("in-layer").addEventListener("change", () => this.report && this.analyze());
    $("in-mode").addEventListener("change", () => this.draw());
    $("in-unit").addEventListener("input", () => { $("in-mode").value = "unit"; this.draw(); });
    $("in-unit").addEventListener("change", () => this.draw(true));
    this.url = bindControls("inside", {run: "in-run", layer: "in-layer", mode: "in-mode", unit: "in-unit", text: "in-text"});
    // A link (or a reload) opens with its text analyzed, as picking an example does, once its run is listed.
    this.fromLink = location.hash.startsWith("#inside?");
    if (this.fromLink) this.url.restore(new URLSearchParams(location.hash.split("?")[1]));
    $("in-text").addEventListener("input", () => this.url.save());
  }

  setRuns(runs) {
    this.runs = runs.filter(r => r.task === this.task);
    if (fillRunSelect($("in-run"), this.runs)) this.fillLayers();
    setEmpty("in", !this.runs.length);
    this.examples();
    if (this.fromLink && $("in-run").value) { this.fromLink = false; this.analyzeLinked(); }
  }

  follow(params) { this.url.apply(params); this.analyzeLinked(); }

  analyzeLinked() { if ($("in-text").value) this.analyze(); }

  shown() { this.url.save(); }

  // Passages of the run's validation text, one click each (then analyzed).
  examples() {
    if ($("in-examples").dataset.run === $("in-run").value) return;
    showExamples($("in-examples"), $("in-run").value, (e, button) => exampleLabel(button, e.text, 24),
                 e => { $("in-text").value = e.text; this.url.save(); this.analyze(); });
  }

  fillLayers() {
    const run = this.runs.find(r => r.name === $("in-run").value);
    const select = $("in-layer"), keep = select.value || select.dataset.wanted;
    select.innerHTML = "";
    for (let i = 0; i < (run?.layers || 1); i++) select.append(new Option(`${i}`, `${i}`));
    if (keep && +keep < select.options.length) select.value = keep;
  }

  reset() {  // another run: the old run's analysis no longer applies
    this.report = null;
    $("in-output").innerHTML = ""; $("in-units").innerHTML = ""; $("in-scale").innerHTML = "";
    $("in-warning").hidden = true;
    setStatus("in-status", "");
  }

  async analyze() {
    setStatus("in-status", "analyzing…");
    const run = $("in-run").value, asked = this.asked = {};
    try {
      const report = await postJSON("/api/analyze", {run, text: $("in-text").value, layer: num("in-layer")});
      // The run changed while this one was analyzing, or a later analysis was asked for: that one is shown.
      if ($("in-run").value !== run || this.asked !== asked) return;
      this.report = report;
      $("in-unit").max = report.units - 1;
      // Named, as the other pages name them: a SentencePiece model shows a run of them as one <unk>.
      const lacking = report.unknown_characters;
      const unknown = lacking.length ? "; not in the model's vocabulary, read as the unknown symbol (marked): " +
        characterList(lacking) : "";
      setStatus("in-status", `mean surprise ${report.mean_surprise} nats/character; layer ${report.layer} has ${report.units} units${unknown}`);
      const warning = $("in-warning");
      warning.hidden = report.tokens.length >= FEW_CHARACTERS;
      warning.textContent = `The units below are correlated over only ${report.tokens.length} characters: with so few, ` +
        `a high r is often chance. Paste a longer text (${FEW_CHARACTERS} characters or more) to trust them.`;
      this.listUnits();
      this.draw(true);
    } catch (e) { if (this.asked === asked) setStatus("in-status", e.message, true); }
  }

  // One entry per unit (a unit that tracks two properties lists both), strongest first.
  listUnits() {
    const list = $("in-units"), byUnit = new Map();
    list.innerHTML = "";
    for (const u of this.report.found_units) {
      if (!byUnit.has(u.unit)) byUnit.set(u.unit, []);
      byUnit.get(u.unit).push(u);
    }
    for (const [unit, found] of byUnit) {
      const li = document.createElement("li");
      const button = Object.assign(document.createElement("button"), {className: "link", textContent: `unit ${unit}`});
      button.addEventListener("click", () => { $("in-unit").value = unit; $("in-mode").value = "unit"; this.draw(true); });
      li.append(button, document.createTextNode(": " + found.map(u => `${u.description} (r = ${u.correlation.toFixed(2)})`).join("; ")));
      list.append(li);
    }
  }

  draw(save = false) {
    if (!this.report) return;
    const out = $("in-output");
    out.innerHTML = "";
    const field = $("in-unit"), unit = Math.max(0, Math.min(Math.round(Number(field.value)) || 0, this.report.units - 1));
    if (field.value !== "" && String(unit) !== field.value) field.value = unit;  // the field says which unit is drawn
    const acts = this.report.activations[unit], unknown = new Set(this.report.unknown_at || []);
    const byUnit = $("in-mode").value === "unit";
    if (byUnit) colorScale($("in-scale"), `unit ${unit}'s activation`, [signedColor(-1), signedColor(0), signedColor(1)], ["−1", "0", "+1"]);
    else surpriseScale($("in-scale"));
    this.report.tokens.forEach((t, i) => {
      const tip = topTip(t.top, t.text, `${JSON.stringify(t.text)}: p = ${(100 * t.p).toFixed(2)}%, surprise ${t.surprise} nats` +
                         `\nunit ${unit}: ${acts[i].toFixed(3)}` + (unknown.has(i) ? "\nnot in the model's vocabulary: read as unknown" : ""));
      const color = byUnit ? signedColor(acts[i]) : surpriseColor(t.surprise);
      out.append(tokenSpan(t.text, color, tip, unknown.has(i) ? "unknown" : ""));
    });
    tipGroup(out);
    if (save) this.url.save();
  }
}
