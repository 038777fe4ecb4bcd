// Language model playground: the text streams in, each character shaded by the model's surprise.
import {postJSON, postStream} from "/static/api.js";
import {surpriseColor, surpriseOf, surpriseScale, tipGroup, tokenSpan, topTip} from "/static/shade.js";
import {$, bindControls, ctrlEnter, exampleLabel, nBestWithinBeam, num, setStatus, showExamples, showRunsOf}
  from "/static/ui.js";

export function tokenTip(t) {
  return topTip(t.top, t.text, `${JSON.stringify(t.text)}: p = ${(100 * t.p).toFixed(2)}%, surprise ${surpriseOf(t.p).toFixed(2)} nats`);
}

export default class GenerateView {
  constructor(state, task) {
    this.task = task;
    this.controller = null;
    $("lm-go").addEventListener("click", () => this.generate());
    $("lm-stop").addEventListener("click", () => this.controller?.abort());
    ctrlEnter("lm-prompt", "lm-go");
    this.url = bindControls("generate", {run: "lm-run", prompt: "lm-prompt", length: "lm-length", temperature: "lm-temperature",
      top_k: "lm-topk", top_p: "lm-topp", seed: "lm-seed", greedy: "lm-greedy", beam: "lm-beam", n_best: "lm-nbest",
      samples: "lm-samples", unknown: "lm-unknown"});
    if (location.hash.startsWith("#generate?")) this.url.restore(new URLSearchParams(location.hash.split("?")[1]));
    $("lm-prompt").addEventListener("input", () => this.url.save());
    this.nBest = nBestWithinBeam("lm-nbest", "lm-beam");
    surpriseScale($("lm-scale"));
    $("lm-run").addEventListener("change", () => this.examples());
    for (const id of ["lm-beam", "lm-greedy"]) for (const kind of ["input", "change"]) $(id).addEventListener(kind, () => this.showApplicable());
    this.showApplicable();
  }

  // Prompts from the run's validation text, one click each.
  examples() {
    if ($("lm-examples").dataset.run === $("lm-run").value) return;
    showExamples($("lm-examples"), $("lm-run").value, (e, button) => exampleLabel(button, e.prompt),
                 e => { $("lm-prompt").value = e.prompt; this.url.save(); $("lm-prompt").focus(); });
  }

  setRuns(runs) {
    showRunsOf(this.task, runs, "lm");
    this.examples();
  }

  follow(params) { this.url.apply(params); }

  shown() { this.url.save(); }

  // The prompt as the model reads it: with --unknown skip the characters it never saw are left out,
  // with unk they read as the unknown symbol; both are marked (the analysis says which they are).
  async showPrompt(out, prompt, unknown, run) {
    const span = Object.assign(document.createElement("span"), {className: "prompt"});
    out.append(span);
    const chars = [...prompt];
    let marked = new Set();
    if (unknown !== "error" && prompt && prompt.length <= 2000) {
      try {
        const report = await postJSON("/api/analyze", {run, text: prompt});
        // By character, not by token: a SentencePiece token is a piece of several characters.
        const lacking = new Set(report.unknown_characters);
        marked = new Set(chars.flatMap((c, i) => lacking.has(c) ? [i] : []));
      } catch { /* the generation itself reports what is wrong with the prompt */ }
    }
    if (!marked.size) { span.textContent = prompt; return 0; }
    chars.forEach((c, i) => {
      if (!marked.has(i)) { span.append(c); return; }
      const tip = unknown === "skip" ? `${JSON.stringify(c)} is not in the model's vocabulary: left out`
        : `${JSON.stringify(c)} is not in the model's vocabulary: read as the unknown symbol`;
      span.append(tokenSpan(c, "", tip, unknown === "skip" ? "unknown skipped" : "unknown"));
    });
    return marked.size;
  }

  // The request the controls make (an empty number field is an error: see num). Only the settings the
  // decoding uses are sent, as the command line takes only those: beam search samples nothing, and
  // greedy decoding draws nothing, so neither takes a temperature, top-k, top-p, seed or samples.
  request() {
    const beam = num("lm-beam");
    const body = {run: $("lm-run").value, prompt: $("lm-prompt").value, length: num("lm-length"), beam,
                  unknown: $("lm-unknown").value};
    if (beam > 1) {
      const {n_best, note} = this.nBest(beam);
      this.note = note;
      return {...body, n_best};
    }
    this.note = "";
    if ($("lm-greedy").checked) return {...body, greedy: true};
    Object.assign(body, {temperature: num("lm-temperature"), top_k: num("lm-topk"), top_p: num("lm-topp"),
                         samples: num("lm-samples")});
    if ($("lm-seed").value !== "") body.seed = num("lm-seed");
    return body;
  }

  // The sampling settings are greyed out where the decoding chosen does not use them.
  showApplicable() {
    const beam = Number($("lm-beam").value) > 1, greedy = $("lm-greedy").checked;
    $("lm-greedy").disabled = beam;
    $("lm-nbest").disabled = !beam;  // the hypotheses of a beam search; sampling and greedy decoding have one
    if (beam) $("lm-nbest").removeAttribute("title"); else $("lm-nbest").title = "n-best lists a beam search's hypotheses";
    for (const id of ["lm-temperature", "lm-topk", "lm-topp", "lm-seed", "lm-samples"]) {
      $(id).disabled = beam || greedy;
      const why = beam ? "beam search does not sample" : greedy ? "greedy decoding draws nothing" : null;
      if (why) $(id).title = why; else $(id).removeAttribute("title");
    }
  }

  async generate() {
    let body;
    try { body = this.request(); } catch (e) { setStatus("lm-status", e.message, true); return; }
    const out = $("lm-output"), list = $("lm-hyps");
    out.innerHTML = ""; list.innerHTML = ""; $("lm-hyps-title").hidden = true;
    const {prompt, unknown, run} = body;
    this.controller = new AbortController();
    $("lm-go").disabled = true; $("lm-stop").disabled = false;
    setStatus("lm-status", body.beam > 1 ? `beam search (${body.beam})…` : "generating…");
    let count = 0, unknowns = 0;
    // One view per sample, each the prompt and its continuation; a single sample is the output itself.
    const views = (body.samples || 1) > 1
      ? Array.from({length: body.samples}, (_, i) => out.appendChild(Object.assign(document.createElement("div"),
          {className: "sample", ariaLabel: `sample ${i + 1}`})))
      : [out];
    try {
      for (const view of views) unknowns = await this.showPrompt(view, prompt, unknown, run);
      await postStream("/api/generate", body, (kind, data) => {
        if (kind === "chunk") {
          const samples = data.samples || [data.tokens];
          samples.forEach((tokens, i) => {
            for (const t of tokens) views[i].append(tokenSpan(t.text, surpriseColor(surpriseOf(t.p)), tokenTip(t)));
          });
          count += samples[0].length;
          setStatus("lm-status", `${count} characters…`);
        } else if (kind === "done") {
          const left = unknowns ? `; ${unknowns} prompt character${unknowns > 1 ? "s" : ""} not in the vocabulary ` +
            (unknown === "skip" ? "left out" : "read as unknown") + " (marked)" : "";
          setStatus("lm-status", `done: ${views.length > 1 ? `${views.length} samples of ` : ""}${data.tokens} characters in ${data.seconds} s` +
                    (data.seed !== undefined ? ` (seed ${data.seed})` : "") + left + this.note);
          this.showHypotheses(list, prompt, data.hypotheses || []);
        } else if (kind === "error") {
          setStatus("lm-status", data.error, true);
        }
      }, this.controller.signal);
    } catch (e) {
      setStatus("lm-status", e.name === "AbortError" ? `stopped after ${count} characters` : e.message, e.name !== "AbortError");
    } finally {
      views.forEach(tipGroup);
      $("lm-go").disabled = false; $("lm-stop").disabled = true;
    }
  }

  showHypotheses(list, prompt, hypotheses) {
    $("lm-hyps-title").hidden = hypotheses.length < 2;
    if (hypotheses.length < 2) return;
    for (const h of hypotheses) {
      const li = document.createElement("li");
      li.tabIndex = 0;
      li.append(Object.assign(document.createElement("span"), {className: "score", textContent: h.log_prob.toFixed(3)}), " ",
                Object.assign(document.createElement("span"), {className: "prompt", textContent: prompt}),
                document.createTextNode(h.text));
      li.setAttribute("aria-label", `log-probability ${h.log_prob.toFixed(3)}: ${prompt}${h.text}`);
      list.append(li);
    }
  }
}
