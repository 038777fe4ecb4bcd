// Runs: a table of every served run, and their curves overlaid (following runs still training).
import {getJSON} from "./api.js";
import {COLORS, lineChart} from "./chart.js";

const SCORES = ["val_accuracy", "val_exact_match"];

export class RunsView {
  constructor(state) {
    this.state = state; this.selected = new Set(); this.metrics = {}; this.timer = null;
  }

  setRuns(runs) {
    if (!this.selected.size && runs.length) {
      // Start with the first group of runs (a grid directory at a glance), else the first run.
      const grouped = runs.find(r => r.name.includes("/"));
      const group = grouped ? grouped.name.slice(0, grouped.name.lastIndexOf("/") + 1) : null;
      runs.filter(r => group ? r.name.startsWith(group) : r === runs[0]).forEach(r => this.selected.add(r.name));
    }
    const body = document.querySelector("#runs-table tbody");
    body.innerHTML = "";
    for (const run of runs) {
      const tr = document.createElement("tr");
      const best = (run.best ? `${run.best.metric} ${(+run.best.value).toFixed(4)} @ ${run.best.step}` : "—")
        + (run.test ? ` · test accuracy ${(+run.test.value).toFixed(4)} on ${run.test.examples}` : "");
      const updated = run.updated_s_ago == null ? "—" : run.updated_s_ago < 120 ? `${Math.round(run.updated_s_ago)} s ago`
        : run.updated_s_ago < 7200 ? `${Math.round(run.updated_s_ago / 60)} min ago` : `${Math.round(run.updated_s_ago / 3600)} h ago`;
      const data = run.data ? String(run.data).split("/").slice(-2).join("/") : "";
      tr.innerHTML = `<td><input type="checkbox"></td><td class="name"></td><td>${run.kind}</td><td>${run.shape}</td>
        <td class="data"></td><td>${best}</td><td>${run.steps}</td><td>${updated}</td>`;
      tr.querySelector(".name").textContent = run.name;
      tr.querySelector(".data").textContent = data;
      const box = tr.querySelector("input");
      box.checked = this.selected.has(run.name);
      box.dataset.run = run.name;
      box.addEventListener("change", () => {
        box.checked ? this.selected.add(run.name) : this.selected.delete(run.name);
        this.refresh();
      });
      body.append(tr);
    }
  }

  shown() {
    this.refresh();
    clearInterval(this.timer);
    this.timer = setInterval(() => { if (!document.getElementById("page-runs").hidden) this.poll(); }, 3000);
  }

  async poll() {  // the list (best scores, steps) and the curves, for runs still training
    const runs = (await getJSON("/api/runs")).runs;
    this.state.runs = runs;
    this.setRuns(runs);
    await this.refresh();
  }

  async refresh() {
    const names = [...this.selected];
    await Promise.all(names.map(async name => {
      this.metrics[name] = (await getJSON(`/api/runs/${encodeURIComponent(name)}/metrics`)).metrics;
    }));
    const loss = [], score = [];
    let scoreName = null;
    names.forEach((name, i) => {
      const m = this.metrics[name] || [], color = COLORS[i % COLORS.length];
      const series = key => m.filter(r => typeof r[key] === "number").map(r => [r.step, r[key]]);
      loss.push({label: name, color, points: series("val_loss")});
      loss.push({label: "", color, dash: true, points: series("train_loss")});
      for (const key of SCORES) {
        if (m.some(r => typeof r[key] === "number")) { scoreName = key; score.push({label: name, color, points: series(key)}); }
      }
    });
    lineChart(document.getElementById("chart-loss"), loss, {xLabel: "step"});
    document.getElementById("fig-score").hidden = !score.length;
    if (score.length) {
      document.getElementById("score-caption").textContent = scoreName.replace("_", " ");
      lineChart(document.getElementById("chart-score"), score, {xLabel: "step", yRange: [0, 1]});
    }
  }
}
