// Language model playground: the text streams in, each character shaded by its probability.
import {postStream} from "./api.js";
import {probColor, tokenSpan, topTip} from "./shade.js";
import {$, fillRunSelect, num, setStatus} from "./ui.js";

export class GenerateView {
  constructor(state) {
    this.controller = null;
    $("lm-go").addEventListener("click", () => this.generate());
    $("lm-stop").addEventListener("click", () => this.controller?.abort());
  }

  setRuns(runs) { fillRunSelect($("lm-run"), runs.filter(r => r.task === "lm")); }

  async generate() {
    const out = $("lm-output"), list = $("lm-nbest");
    out.innerHTML = ""; list.innerHTML = "";
    const prompt = $("lm-prompt").value;
    if (prompt) out.append(Object.assign(document.createElement("span"), {className: "prompt", textContent: prompt}));
    const body = {run: $("lm-run").value, prompt, length: num("lm-length"), temperature: num("lm-temperature"),
                  top_k: num("lm-topk"), top_p: num("lm-topp"), greedy: $("lm-greedy").checked,
                  beam: num("lm-beam"), n_best: Math.min(num("lm-nbest"), num("lm-beam")),
                  unknown: $("lm-unknown").value};
    if ($("lm-seed").value !== "") body.seed = num("lm-seed");
    this.controller = new AbortController();
    $("lm-go").disabled = true; $("lm-stop").disabled = false;
    setStatus("lm-status", body.beam > 1 ? `beam search (${body.beam})…` : "generating…");
    let count = 0;
    try {
      await postStream("/api/generate", body, (kind, data) => {
        if (kind === "chunk") {
          for (const t of data.tokens) {
            out.append(tokenSpan(t.text, probColor(t.p), topTip(t.top, `p = ${(100 * t.p).toFixed(1)}%`)));
          }
          count += data.tokens.length;
          setStatus("lm-status", `${count} characters…`);
        } else if (kind === "done") {
          setStatus("lm-status", `done: ${data.tokens} characters in ${data.seconds} s` +
                    (data.seed !== undefined ? ` (seed ${data.seed})` : ""));
          for (const h of data.hypotheses || []) {
            const li = document.createElement("li");
            li.textContent = `${h.log_prob.toFixed(3)}  ${prompt}${h.text}`;
            list.append(li);
          }
        } else if (kind === "error") {
          setStatus("lm-status", data.error, true);
        }
      }, this.controller.signal);
    } catch (e) {
      setStatus("lm-status", e.name === "AbortError" ? `stopped after ${count} characters` : e.message, e.name !== "AbortError");
    } finally {
      $("lm-go").disabled = false; $("lm-stop").disabled = true;
    }
  }
}
