// Encoder-decoder: n-best hypotheses with their scores and the attention heat-map of the chosen one.
import {postJSON} from "/static/api.js";
import {characterList, tipGroup, visibleLabel} from "/static/shade.js";
import {$, bindControls, exampleLabel, nBestWithinBeam, num, setStatus, showExamples, showRunsOf, submitsEnter}
  from "/static/ui.js";

export default class TranslateView {
  constructor(state, task) {
    this.task = task;
    this.choose = 0;
    $("tr-go").addEventListener("click", () => { this.choose = 0; this.translate(); });
    $("tr-source").addEventListener("keydown", e => { if (submitsEnter(e)) { this.choose = 0; this.translate(); } });
    $("tr-run").addEventListener("change", () => { this.reset(); this.examples(); });
    this.url = bindControls("translate", {run: "tr-run", beam: "tr-beam", n_best: "tr-nbest", unknown: "tr-unknown",
                                          source: "tr-source"});
    // A link (or a reload) opens with its translation, as picking an example does, once its run is listed.
    this.fromLink = location.hash.startsWith("#translate?");
    if (this.fromLink) this.url.restore(new URLSearchParams(location.hash.split("?")[1]));
    $("tr-source").addEventListener("input", () => this.url.save());
    this.nBest = nBestWithinBeam("tr-nbest", "tr-beam");
  }

  setRuns(runs) {
    showRunsOf(this.task, runs, "tr");
    this.examples();
    if (this.fromLink && $("tr-run").value) { this.fromLink = false; this.translateLinked(); }
  }

  follow(params) { this.url.apply(params); this.translateLinked(); }

  translateLinked() {
    this.choose = 0;
    if ($("tr-source").value) this.translate();
  }

  shown() { this.url.save(); }

  // Sources from the run's validation pairs, one click each (then translated).
  examples() {
    if ($("tr-examples").dataset.run === $("tr-run").value) return;
    showExamples($("tr-examples"), $("tr-run").value, (e, button) => { exampleLabel(button, e.source); button.title = `${e.source} → ${e.target}`; },
                 e => { $("tr-source").value = e.source; this.url.save(); this.choose = 0; this.translate(); });
  }

  reset() { this.clear(); setStatus("tr-status", ""); }

  // No hypotheses or heat-map on show: those of an earlier source would pass for this one's answer.
  clear() { $("tr-hyps").innerHTML = ""; $("tr-heatmap").innerHTML = ""; $("tr-attention-title").hidden = true; }

  async translate() {
    if (!$("tr-source").value) { setStatus("tr-status", "type a source first", true); return; }
    setStatus("tr-status", "decoding…");
    // Only the latest request's answer is shown: an earlier one answered later (a link followed, then
    // another source translated) would show another source's hypotheses.
    const asked = this.asked = {};
    try {
      const beam = num("tr-beam");
      const source = $("tr-source").value, {n_best, note} = this.nBest(beam);
      const report = await postJSON("/api/translate", {run: $("tr-run").value, source, beam, n_best, choose: this.choose,
                                                       unknown: $("tr-unknown").value});
      if (this.asked !== asked) return;
      // The source as typed, one character per column: the unknown symbol would hide which one it was.
      const chars = Array.from(source), unknown = [...new Set(report.unknown_at.map(i => chars[i]))];
      const choice = report.attention && report.hypotheses.length > 1 ? "; choose one to see its attention" : "";
      setStatus("tr-status", `${report.hypotheses.length} hypotheses (beam ${beam})${choice}` +
        (unknown.length ? `; not in the model's vocabulary, read as unknown (marked): ${characterList(unknown)}` : "") +
        (report.cut_off ? `; hypothesis ${report.chosen + 1} stopped at the decoding limit before the model ended it (cut off)` : "") +
        note);
      this.showHypotheses(report);
      this.showAttention(report, chars);
    } catch (e) { if (this.asked === asked) { this.clear(); setStatus("tr-status", e.message, true); } }
  }

  showHypotheses(report) {
    const table = $("tr-hyps");
    table.innerHTML = "<tr><th></th><th>output</th><th>score</th><th>log-probability</th></tr>";
    report.hypotheses.forEach((h, i) => {
      const tr = document.createElement("tr");
      tr.className = i === report.chosen ? "chosen" : "";
      tr.tabIndex = 0;
      tr.setAttribute("aria-selected", String(i === report.chosen));
      tr.innerHTML = `<td>${i + 1}</td><td class="out"></td><td>${h.score.toFixed(4)}</td><td>${h.log_prob.toFixed(4)}</td>`;
      // An output that is empty, or starts or ends with a space, would look like another.
      const out = tr.querySelector(".out");
      if (!h.text) Object.assign(out, {className: "out hint", textContent: "(empty)", title: "the model ended at once"});
      else out.textContent = h.text.trim() === h.text ? h.text : visibleLabel(h.text);
      const choose = () => { this.choose = i; this.translate().then(() => $("tr-hyps").rows[i + 1]?.focus()); };
      tr.addEventListener("click", choose);
      tr.addEventListener("keydown", e => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); choose(); } });
      table.append(tr);
    });
  }

  showAttention(report, chars) {
    const box = $("tr-heatmap");
    box.innerHTML = "";
    $("tr-attention-title").hidden = false;
    if (!report.attention) { box.textContent = "this model has no attention (trained with --attention none)"; return; }
    const table = document.createElement("table");
    table.className = "heatmap";
    const head = document.createElement("tr");
    head.append(document.createElement("th"));
    const unknown = new Set(report.unknown_at);
    const sources = report.source_tokens.map((s, j) => unknown.has(j) ? chars[j] : s);
    sources.forEach((s, j) => {
      const th = Object.assign(document.createElement("th"), {textContent: visibleLabel(s)});
      if (unknown.has(j)) Object.assign(th, {className: "unknown", title: "not in the model's vocabulary: read as unknown"});
      head.append(th);
    });
    table.append(head);
    report.attention.forEach((row, i) => {
      const tr = document.createElement("tr");
      tr.append(Object.assign(document.createElement("th"), {textContent: visibleLabel(report.output_tokens[i])}));
      row.forEach((w, j) => {
        const td = document.createElement("td");
        td.style.background = `rgba(30, 90, 200, ${w.toFixed(3)})`;
        td.style.color = w > 0.5 ? "#fff" : "";
        td.textContent = w >= 0.01 ? w.toFixed(2).replace(/^0/, "") : "";
        td.dataset.tip = `${JSON.stringify(report.output_tokens[i])} ← ${JSON.stringify(sources[j])}: ${w.toFixed(3)}` +
          (unknown.has(j) ? " (read as unknown)" : "");
        tr.append(td);
      });
      table.append(tr);
    });
    table.dataset.row = String(report.source_tokens.length);
    box.append(table);
    tipGroup(table);
  }
}
