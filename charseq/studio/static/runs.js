// Runs: a table of every served run (updated in place, so focus and selection survive each poll),
// the settings that differ among the ticked runs, and one chart per metric of metrics.jsonl.
import {getJSON} from "./api.js";
import {available, lineChart, runColor} from "./chart.js";
import {$, bindControls, currentPage} from "./ui.js";

const NOT_METRICS = new Set(["step", "elapsed_s", "time", "tokens_seen"]);
// tokens seen: steps x batch x length (characters for a character vocabulary, pieces, or image rows)
const X_AXES = {step: "step", relative: "training time", wall: "wall time", tokens: "tokens seen"};

// What a run's tokens are, as its speed and tokens seen count them.
function tokensOf(run) {
  if (run?.kind === "image classifier") return "image rows";
  return run?.config?.data?.tokenizer === "sentencepiece" ? "SentencePiece pieces" : "characters";
}

// What a metric of the runs `runs` is measured in, for the y-axis title.
function unitOf(metric, runs) {
  if (metric.endsWith("_loss")) return "nats";
  if (metric.includes("bits_per")) return "bits per character";
  if (/accuracy|exact_match|error_rate|f1|precision|recall/.test(metric)) return "fraction";
  if (metric === "chars_per_sec") {
    const tokens = new Set(runs.map(tokensOf));
    return `${tokens.size === 1 ? [...tokens][0] : "tokens"} per second`;
  }
  if (metric === "lr") return "learning rate";
  return "";
}

// The y range of a chart whose points all have one value, which Plotly centres on it (an accuracy of 0.8
// between -0.5 and 1.5, a loss between below zero and above): from zero, and to 1 for a fraction. None: automatic.
function flatRange(series, unit) {
  const values = new Set(series.flatMap(s => s.y));
  if (values.size !== 1) return null;
  const [v] = values;
  if (!(v >= 0)) return null;
  return unit === "fraction" ? [0, Math.max(1, v)] : [0, 2 * v || 1];
}

// A best score as the table shows it: four decimals, but a diverged run's huge loss in four significant digits
// (as `charseq grid` prints it).
const score = v => (Math.abs(v) < 1e6 ? v.toFixed(4) : v.toPrecision(4));

// Sorting by best: each metric's runs together, the better first (lower losses, higher accuracies); none last.
const bestKey = run => (run.best ? [run.best.metric, run.best.mode === "max" ? -run.best.value : +run.best.value]
  : ["\uffff", 0]);
const compare = (x, y) => (Array.isArray(x) ? compare(x[0], y[0]) || compare(x[1], y[1]) : x < y ? -1 : x > y ? 1 : 0);

export function ago(seconds) {
  if (seconds == null) return "—";
  if (seconds < 120) return `${Math.round(seconds)} s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} days ago`;
}

export function duration(seconds) {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

// Every leaf of a config as "a.b.c" -> value (for filtering and comparing runs).
function flatten(value, prefix = "", out = {}) {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else out[prefix] = Array.isArray(value) ? JSON.stringify(value) : value;
  return out;
}

// The ticked runs a link names, one `runs` parameter each: a grid's run names hold commas (units=16,lr=0.003).
function linkedRuns(params) { return params.getAll("runs").filter(Boolean); }

// A link's sort=COLUMN (or -COLUMN, descending) as [column, direction]; by name, ascending, without one.
function linkedSort(params) {
  const value = params.get("sort") || "", key = value.replace(/^-/, "");
  const known = [...document.querySelectorAll("#runs-table th[data-sort]")].some(th => th.dataset.sort === key);
  return known ? [key, value.startsWith("-") ? -1 : 1] : ["name", 1];
}

// A name from a link made when the ticked runs were one comma-separated value: the served runs it lists,
// once the runs are known. A name that is served, or may be soon (a run still to be trained), stays.
function asListed(name, runs) {
  const served = new Set(runs.map(r => r.name)), parts = name.split(",");
  return served.has(name) || !parts.some(p => served.has(p)) ? [name] : parts.filter(p => served.has(p));
}

// Let the plots in `box` go before it is emptied. Parallel coordinates hold three WebGL contexts each, of
// the few a page has (Chromium: 16), and a run still training redraws them at every poll: purging a plot
// leaves its contexts to the garbage collector, so they are given up at once.
function freePlots(box) {
  for (const plot of box.querySelectorAll(".js-plotly-plot")) {
    const canvases = [...plot.querySelectorAll("canvas.gl-canvas")];
    window.Plotly?.purge(plot);
    for (const canvas of canvases) canvas.getContext("webgl")?.getExtension("WEBGL_lose_context")?.loseContext();
  }
}

const CELLS = ["pick", "name", "kind", "shape", "data", "best", "steps", "status"];

export class RunsView {
  constructor(state) {
    this.state = state; this.runs = []; this.selected = new Set(); this.initialized = false;
    this.metrics = {}; this.rows = new Map(); this.charts = new Map(); this.hidden = new Set();
    this.sort = {key: "name", dir: 1}; this.refreshing = false;
    this.url = bindControls("runs", {x: "chart-x", log: "chart-log", smooth: "chart-smooth", filter: "runs-filter"},
                            () => ({runs: [...this.selected], hide: [...this.hidden].join(","),
                                    sort: this.sort.key === "name" && this.sort.dir > 0 ? ""
                                      : `${this.sort.dir < 0 ? "-" : ""}${this.sort.key}`}));
    const restore = this.url.restore;
    const params = new URLSearchParams(location.hash.split("?")[1] || "");
    if (currentPage() === "runs") {
      restore(params);
      if (params.has("runs")) { linkedRuns(params).forEach(n => this.selected.add(n)); this.initialized = true; }
      if (params.has("hide")) params.get("hide").split(",").filter(Boolean).forEach(m => this.hidden.add(m));
    }
    $("chart-smooth-value").textContent = $("chart-smooth").value;
    $("chart-smooth").addEventListener("input", () => { $("chart-smooth-value").textContent = $("chart-smooth").value; this.draw(); });
    for (const id of ["chart-x", "chart-log"]) $(id).addEventListener("change", () => this.draw());
    $("runs-filter").addEventListener("input", () => { this.applyFilter(); this.url.save(); });
    $("runs-all").addEventListener("change", () => {
      for (const [name, row] of this.rows) {
        if (row.tr.hidden) continue;
        $("runs-all").checked ? this.selected.add(name) : this.selected.delete(name);
        row.box.checked = $("runs-all").checked;
      }
      this.selectionChanged();
    });
    document.querySelectorAll("#runs-table th[data-sort]").forEach(th => {
      th.tabIndex = 0;
      const sortBy = () => {
        this.sortBy(th.dataset.sort, this.sort.key === th.dataset.sort ? -this.sort.dir : 1);
        this.url.save();
      };
      th.addEventListener("click", sortBy);
      th.addEventListener("keydown", e => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(); } });
    });
    this.sortBy(...linkedSort(currentPage() === "runs" ? params : new URLSearchParams()));
    window.matchMedia?.("(prefers-color-scheme: dark)").addEventListener?.("change", () => this.draw());
  }

  // A link opened over this page (see bindControls' apply): its ticked runs, hidden metrics and chart settings.
  follow(params) {
    const list = key => (params.get(key) || "").split(",").filter(Boolean);
    this.selected = new Set(linkedRuns(params).flatMap(name => asListed(name, this.runs))); this.hidden = new Set(list("hide")); this.initialized = true;
    for (const [name, row] of this.rows) row.box.checked = this.selected.has(name);
    $("chart-picker").querySelectorAll("input[type=checkbox]").forEach(check => { check.checked = !this.hidden.has(check.value); });
    this.sortBy(...linkedSort(params));
    this.url.apply(params);
    $("chart-smooth-value").textContent = $("chart-smooth").value;
    this.applyFilter();
    this.selectionChanged();
  }

  setRuns(runs) {
    this.runs = runs;
    const listed = [...this.selected].flatMap(name => asListed(name, runs));
    if (listed.length !== this.selected.size || listed.some(n => !this.selected.has(n))) {
      this.selected = new Set(listed);
      this.url.save();
    }
    runs.forEach(r => runColor(r.name));  // colours in the order runs are first seen, then kept
    if (!this.initialized && runs.length) {
      // Start with the first grid's runs (a grid at a glance, also when the folder served is the grid),
      // else the first folder of runs, else the first run that has curves to draw.
      const folder = run => run.name.slice(0, run.name.lastIndexOf("/") + 1);
      const first = runs.find(r => r.grid) || runs.find(r => r.name.includes("/"));
      const drawable = runs.find(r => r.evaluations > 0) || runs.find(r => r.task !== "unreadable") || runs[0];
      runs.filter(r => first ? folder(r) === folder(first) && !!r.grid === !!first.grid : r === drawable)
        .forEach(r => this.selected.add(r.name));
      this.initialized = true;
    }
    $("runs-empty").hidden = runs.length > 0;
    const body = document.querySelector("#runs-table tbody"), names = new Set(runs.map(r => r.name));
    for (const [name, row] of this.rows) if (!names.has(name)) { row.tr.remove(); this.rows.delete(name); }
    for (const run of runs) {
      if (!this.rows.has(run.name)) this.rows.set(run.name, this.makeRow(run, body));
      this.updateRow(this.rows.get(run.name), run);
    }
    this.order();
    this.applyFilter();
    this.showDiff();
  }

  makeRow(run, body) {
    const tr = document.createElement("tr"), cells = {};
    for (const key of CELLS) { cells[key] = document.createElement("td"); cells[key].className = key; tr.append(cells[key]); }
    const label = document.createElement("label");
    const box = Object.assign(document.createElement("input"), {type: "checkbox"});
    box.dataset.run = run.name;
    box.setAttribute("aria-label", `show ${run.name} in the charts`);
    const swatch = Object.assign(document.createElement("span"), {className: "swatch"});
    swatch.style.background = runColor(run.name);
    label.append(box, swatch);
    cells.pick.append(label);
    box.checked = this.selected.has(run.name);
    box.addEventListener("change", () => {
      box.checked ? this.selected.add(run.name) : this.selected.delete(run.name);
      this.selectionChanged();
    });
    body.append(tr);
    return {tr, cells, box, run};
  }

  updateRow(row, run) {
    row.run = run;
    const set = (key, text, title) => {
      if (row.cells[key].textContent !== text) row.cells[key].textContent = text;
      if (title !== undefined && row.cells[key].title !== title) row.cells[key].title = title;
    };
    set("name", run.name);
    set("kind", run.kind);
    set("shape", run.shape || "");
    const data = run.data ? String(run.data).split("/").slice(-2).join("/") : "";
    set("data", data, run.data ? String(run.data) : "");
    set("best", (run.best ? `${run.best.metric} ${score(+run.best.value)} @ ${run.best.step}` : "—")
      + (run.test ? ` · test accuracy ${(+run.test.value).toFixed(4)} on ${run.test.examples}` : ""));
    set("steps", String(run.steps ?? 0));
    this.updateStatus(row.cells.status, run);
    row.tr.classList.toggle("unreadable", run.task === "unreadable");
    if (run.error) row.tr.title = run.error;
    if (row.box.checked !== this.selected.has(run.name)) row.box.checked = this.selected.has(run.name);
  }

  // Status from the server (running with progress and ETA, finished, stopped, failed), else how fresh it is.
  updateStatus(cell, run) {
    const key = JSON.stringify([run.status, run.progress, run.eta_seconds, run.status_message, Math.round(run.updated_s_ago ?? -1)]);
    if (cell.dataset.key === key) return;
    cell.dataset.key = key;
    cell.innerHTML = "";
    cell.title = run.status_message || "";  // why it stopped, failed or finished early
    const status = run.status;
    if (status === "running") {
      const bar = document.createElement("progress");
      bar.max = 1;
      if (typeof run.progress === "number") bar.value = run.progress;
      const pct = typeof run.progress === "number" ? `${Math.round(100 * run.progress)}%` : "";
      const eta = typeof run.eta_seconds === "number" ? `${duration(run.eta_seconds)} left` : "";
      bar.setAttribute("aria-label", `running ${pct}`.trim());
      cell.append(Object.assign(document.createElement("span"), {className: "state running", textContent: "running"}),
                  bar, document.createTextNode([pct, eta].filter(Boolean).join(" · ")));
    } else {
      if (status) cell.append(Object.assign(document.createElement("span"), {className: `state ${status}`, textContent: status}));
      cell.append(document.createTextNode(`${status ? " · " : ""}updated ${ago(run.updated_s_ago)}`));
      // Shown, not only in the tooltip, which keyboard and touch users cannot open.
      if (run.status_message) {
        cell.append(Object.assign(document.createElement("div"), {className: "why", textContent: run.status_message}));
      }
    }
  }

  // The table sorted by the column `key` (a th's data-sort), ascending (dir 1) or descending (-1).
  sortBy(key, dir) {
    this.sort = {key, dir};
    document.querySelectorAll("#runs-table th[data-sort]").forEach(h => h.setAttribute("aria-sort",
      h.dataset.sort !== key ? "none" : dir > 0 ? "ascending" : "descending"));
    this.order();
  }

  order() {
    const {key, dir} = this.sort;
    const value = run => key === "best" ? bestKey(run) : key === "steps" ? +run.steps || 0
      : key === "status" ? `${run.status || ""}${String(Math.round(run.updated_s_ago ?? 1e12)).padStart(14, "0")}` : String(run[key] ?? "");
    const rows = [...this.rows.values()].sort((a, b) =>
      (compare(value(a.run), value(b.run)) || (a.run.name < b.run.name ? -1 : 1)) * dir);
    const body = document.querySelector("#runs-table tbody");
    if (rows.every((r, i) => body.children[i] === r.tr)) return;
    const focused = document.activeElement;
    rows.forEach(r => body.append(r.tr));
    if (focused && focused !== document.activeElement && body.contains(focused)) focused.focus();
  }

  applyFilter() {
    const words = $("runs-filter").value.toLowerCase().split(/\s+/).filter(Boolean);
    for (const row of this.rows.values()) {
      const run = row.run;
      const text = [run.name, run.kind, run.shape, run.data, ...Object.entries(flatten(run.config || {})).map(([k, v]) => `${k}=${v}`)]
        .join(" ").toLowerCase();
      row.tr.hidden = !words.every(w => text.includes(w));
    }
  }

  // The settings that differ among the ticked runs: a table, one row per run (two runs: their config diff).
  showDiff() {
    const box = $("runs-diff"), runs = this.runs.filter(r => this.selected.has(r.name) && r.config);
    const key = JSON.stringify(runs.map(r => [r.name, r.config, r.best]));
    if (box.dataset.key === key) return;
    box.dataset.key = key;
    freePlots(box);
    box.innerHTML = "";
    if (runs.length < 2) { box.hidden = true; return; }
    box.hidden = false;
    if (new Set(runs.map(r => r.kind)).size > 1) {  // settings of different kinds of model do not line up
      box.append(Object.assign(document.createElement("p"), {className: "hint",
        textContent: "The ticked runs are of different kinds; tick runs of one kind to compare their settings."}));
      return;
    }
    const flat = runs.map(r => flatten(r.config));
    // Not what follows from the settings: the sizing rule's sentence, the data files' sizes and checksums.
    const keys = [...new Set(flat.flatMap(Object.keys))].sort()
      .filter(k => k !== "sizing" && !k.startsWith("data_files."))
      .filter(k => new Set(flat.map(f => JSON.stringify(f[k] ?? null))).size > 1);
    box.append(Object.assign(document.createElement("h3"), {textContent: keys.length
      ? `Settings that differ among the ${runs.length} ticked runs` : `The ${runs.length} ticked runs have the same settings`}));
    if (!keys.length) return;
    const table = document.createElement("table");
    table.className = "runs compare";
    const head = table.insertRow();
    head.append(Object.assign(document.createElement("th"), {textContent: "run"}));
    for (const k of keys) head.append(Object.assign(document.createElement("th"), {textContent: k}));
    runs.forEach((run, i) => {
      const tr = table.insertRow();
      const name = tr.insertCell();
      const swatch = Object.assign(document.createElement("span"), {className: "swatch"});
      swatch.style.background = runColor(run.name);
      name.append(swatch, document.createTextNode(run.name));
      for (const k of keys) {
        const v = flat[i][k];
        const cell = tr.insertCell();
        cell.textContent = v === undefined ? "—" : String(v);
        cell.title = `${k} = ${v === undefined ? "(not set)" : v}`;
      }
    });
    const scroll = Object.assign(document.createElement("div"), {className: "scroll"});
    scroll.append(table);
    box.append(scroll);
    this.drawAxes(box, runs, flat, keys);
  }

  // Three or more ticked runs scored by one metric (a grid, say): a grid over two settings is a heat-map of
  // the best score; otherwise parallel coordinates, one axis per setting that differs and one for the score.
  drawAxes(box, runs, flat, keys) {
    const metric = runs[0].best?.metric;
    if (!available() || runs.length < 3 || !runs.every(r => r.best && r.best.metric === metric)) return;
    const shown = keys.filter(k => !/sizing|path|train$|val$|source$/.test(k)).slice(0, 8);
    if (!shown.length) return;
    if (shown.length === 2) {  // a full grid over two settings (each pair of values one run): a heat-map
      const cells = new Set(flat.map(f => `${f[shown[0]]}\u0000${f[shown[1]]}`));
      const sizes = shown.map(k => new Set(flat.map(f => String(f[k]))).size);
      if (cells.size === runs.length && sizes[0] * sizes[1] === runs.length) { this.drawHeatmap(box, runs, flat, shown, metric); return; }
    }
    const dimensions = shown.map(k => {
      const values = flat.map(f => f[k] ?? null);
      if (values.every(v => typeof v === "number")) return {label: k, values};
      const names = [...new Set(values.map(String))].sort();
      return {label: k, values: values.map(v => names.indexOf(String(v))), tickvals: names.map((_, i) => i), ticktext: names};
    });
    const best = runs.map(r => +r.best.value);
    dimensions.push({label: `best ${metric}`, values: best});
    const figure = Object.assign(document.createElement("figure"), {className: "axes"});
    const plot = Object.assign(document.createElement("div"), {className: "plot"});
    figure.append(Object.assign(document.createElement("figcaption"),
      {textContent: `best ${metric} over the settings that differ (drag along an axis to filter)`}), plot);
    box.append(figure);
    const t = getComputedStyle(document.body);
    window.Plotly.react(plot, [{type: "parcoords", dimensions,
      line: {color: best, colorscale: "Viridis", reversescale: runs[0].best && /loss|error/.test(metric), showscale: true}}],
      {height: 260, margin: {l: 60, r: 60, t: 40, b: 20}, paper_bgcolor: "rgba(0,0,0,0)",
       font: {color: t.getPropertyValue("--fg").trim(), size: 11}},
      {responsive: true, displaylogo: false, toImageButtonOptions: {format: "png", filename: "settings", scale: 2}});
  }

  // The best score over a grid's two axes: one cell per pair of values (the better run where two share one).
  drawHeatmap(box, runs, flat, [xKey, yKey], metric) {
    const order = values => [...new Set(values.map(String))].sort((a, b) => (isNaN(a) || isNaN(b) ? a.localeCompare(b) : a - b));
    const xs = order(flat.map(f => f[xKey] ?? "—")), ys = order(flat.map(f => f[yKey] ?? "—"));
    const lower = /loss|error/.test(metric), z = ys.map(() => xs.map(() => null)), who = ys.map(() => xs.map(() => ""));
    runs.forEach((r, i) => {
      const x = xs.indexOf(String(flat[i][xKey] ?? "—")), y = ys.indexOf(String(flat[i][yKey] ?? "—")), v = +r.best.value;
      if (z[y][x] === null || (lower ? v < z[y][x] : v > z[y][x])) { z[y][x] = v; who[y][x] = r.name; }
    });
    const figure = Object.assign(document.createElement("figure"), {className: "axes"});
    const plot = Object.assign(document.createElement("div"), {className: "plot grid-heatmap"});
    figure.append(Object.assign(document.createElement("figcaption"),
      {textContent: `best ${metric} over ${xKey} and ${yKey}` + (lower ? " (lower is better)" : " (higher is better)")}), plot);
    box.append(figure);
    const fg = getComputedStyle(document.body).getPropertyValue("--fg").trim();
    window.Plotly.react(plot, [{type: "heatmap", x: xs, y: ys, z, customdata: who, colorscale: "Viridis", reversescale: lower,
      text: z.map(row => row.map(v => (v === null ? "" : v.toPrecision(4)))), texttemplate: "%{text}",
      hovertemplate: `%{customdata}<br>${xKey} %{x}, ${yKey} %{y}<br>best ${metric} %{z:.5~g}<extra></extra>`,
      colorbar: {title: {text: metric, side: "right"}, thickness: 12}}],
      {height: Math.min(420, 140 + 40 * ys.length), margin: {l: 70, r: 10, t: 20, b: 50}, paper_bgcolor: "rgba(0,0,0,0)",
       plot_bgcolor: "rgba(0,0,0,0)", font: {color: fg, size: 11},
       xaxis: {title: {text: xKey}, type: "category", automargin: true}, yaxis: {title: {text: yKey}, type: "category", automargin: true}},
      {responsive: true, displaylogo: false, toImageButtonOptions: {format: "png", filename: "grid", scale: 2}});
  }

  selectionChanged() {
    const shown = [...this.rows.values()].filter(r => !r.tr.hidden);
    $("runs-all").checked = shown.length > 0 && shown.every(r => this.selected.has(r.run.name));
    this.url.save();
    this.showDiff();
    this.refresh();
  }

  shown() {
    this.url.save();
    this.refresh();
  }

  poll() { if (!$("page-runs").hidden) this.refresh(); }

  async refresh() {  // fetch the curves of the ticked runs (runs still training grow between polls)
    if (this.refreshing) return;
    this.refreshing = true;
    try {
      const names = [...this.selected].filter(n => this.runs.some(r => r.name === n));
      await Promise.all(names.map(async name => {
        try { this.metrics[name] = (await getJSON(`/api/runs/${encodeURIComponent(name)}/metrics`)).metrics; }
        catch { this.metrics[name] = this.metrics[name] || []; }
      }));
      this.draw();
    } finally { this.refreshing = false; }
  }

  // Metric names present among the ticked runs: validation first, then training, then the rest.
  metricNames(names) {
    const found = new Set();
    for (const n of names) for (const r of this.metrics[n] || []) for (const [k, v] of Object.entries(r)) {
      if (!NOT_METRICS.has(k) && typeof v === "number") found.add(k);
    }
    const rank = k => (k.startsWith("val_") ? 0 : k.startsWith("train_") ? 1 : k.startsWith("test_") ? 2 : 3);
    return [...found].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : 1));
  }

  fillPicker(metrics) {
    const box = $("chart-metrics"), key = metrics.join(",");
    if (box.dataset.key === key) return;
    box.dataset.key = key;
    box.innerHTML = "";
    for (const m of metrics) {
      const label = document.createElement("label");
      const check = Object.assign(document.createElement("input"), {type: "checkbox", checked: !this.hidden.has(m), value: m});
      check.addEventListener("change", () => {
        check.checked ? this.hidden.delete(m) : this.hidden.add(m);
        this.url.save();
        this.draw();
      });
      label.append(check, document.createTextNode(` ${m}`));
      box.append(label);
    }
  }

  // x values of a run's records for the chosen axis.
  xValues(run, records, axis) {
    if (axis === "step") return records.map(r => r.step);
    if (axis === "tokens") return records.map(r => r.tokens_seen);
    if (axis === "relative") return records.map(r => r.elapsed_s);
    // Wall time: recorded with each evaluation; older runs' times are reckoned back from the file's age.
    const last = records[records.length - 1], end = Date.now() - 1000 * (run?.updated_s_ago ?? 0);
    return records.map(r => new Date(typeof r.time === "number" ? 1000 * r.time : end - 1000 * ((last.elapsed_s ?? 0) - (r.elapsed_s ?? 0))));
  }

  draw() {
    const container = $("charts");
    const names = [...this.selected].filter(n => this.runs.some(r => r.name === n));
    const metrics = this.metricNames(names);
    this.fillPicker(metrics);
    const note = $("charts-note");
    if (!available()) {
      note.hidden = false;
      note.textContent = "The charts need plotly.js, which the studio serves from the plotly package: pip install 'charseq[studio]'.";
      return;
    }
    let axis = $("chart-x").value;
    // Runs made before records counted the tokens seen cannot be drawn against them: step instead, and a note.
    const counted = names.filter(n => (this.metrics[n] || []).some(r => typeof r.tokens_seen === "number"));
    const tokensOption = $("chart-x").querySelector("option[value=tokens]");
    tokensOption.disabled = names.length > 0 && !counted.length;
    tokensOption.title = tokensOption.disabled ? "the ticked runs do not record the tokens they have seen (made by an older charseq)" : "";
    note.hidden = names.length > 0 || !this.runs.length;
    note.textContent = "Tick a run in the table to see its curves.";
    if (axis === "tokens" && counted.length < names.length) {
      note.hidden = false;
      note.textContent = counted.length ? `Not drawn against tokens seen (they do not record them): ${names.filter(n => !counted.includes(n)).join(", ")}.`
        : "None of the ticked runs records the tokens it has seen (made by an older charseq): drawn against step instead.";
      if (!counted.length) axis = "step";
    }
    // A ticked run with no evaluation yet (just started, or killed before its first) has no curve: said, not left blank.
    const bare = names.filter(n => n in this.metrics && !this.metrics[n].length);
    if (bare.length) {
      note.textContent = (note.hidden ? "" : note.textContent + " ") + `No evaluation recorded yet, so no curves: ` +
        `${bare.join(", ")} (a run's curves appear with its first evaluation).`;
      note.hidden = false;
    }
    // A link (or a run ticked before it was deleted) naming runs this studio does not serve: said, not ignored.
    const unserved = [...this.selected].filter(n => !this.runs.some(r => r.name === n));
    if (unserved.length && this.runs.length) {
      const before = note.hidden ? "" : ` ${note.textContent}`;
      note.textContent = `Not served here (or not yet): ${unserved.join(", ")}.${before}`;
      note.hidden = false;
    }
    const logY = $("chart-log").checked, smoothing = Number($("chart-smooth").value);
    let scale = 1, xTitle = X_AXES[axis];
    if (axis === "relative") {
      const longest = Math.max(0, ...names.flatMap(n => (this.metrics[n] || []).map(r => r.elapsed_s || 0)));
      [scale, xTitle] = longest > 3 * 3600 ? [3600, "training time (hours)"] : longest > 300 ? [60, "training time (minutes)"]
        : [1, "training time (seconds)"];
    }
    const shown = metrics.filter(m => !this.hidden.has(m));
    for (const [m, fig] of this.charts) if (!shown.includes(m)) { window.Plotly.purge(fig.plot); fig.figure.remove(); this.charts.delete(m); }
    shown.forEach((metric, i) => {
      if (!this.charts.has(metric)) {
        const figure = document.createElement("figure");
        figure.className = "chart";
        figure.dataset.metric = metric;
        const plot = Object.assign(document.createElement("div"), {className: "plot"});
        figure.append(plot);
        this.charts.set(metric, {figure, plot});
      }
      const {figure, plot} = this.charts.get(metric);
      if (container.children[i] !== figure) container.insertBefore(figure, container.children[i] || null);
      const series = names.map(name => {
        const run = this.runs.find(r => r.name === name);
        const records = (this.metrics[name] || []).filter(r => typeof r[metric] === "number" && typeof r.step === "number" &&
                                                           (axis !== "tokens" || typeof r.tokens_seen === "number"));
        const xs = this.xValues(run, records, axis).map(x => (typeof x === "number" && scale !== 1 ? x / scale : x));
        return {name, color: runColor(name), x: xs, y: records.map(r => r[metric])};
      }).filter(s => s.y.length);
      const unit = unitOf(metric, names.map(name => this.runs.find(r => r.name === name)));
      lineChart(plot, series, {title: metric, xTitle, yTitle: unit ? `${metric} (${unit})` : metric,
                               xType: axis === "wall" ? "date" : "linear", logY, smoothing, file: metric,
                               yRange: flatRange(series, unit),
                               revision: `${axis}|${logY}`});
    });
  }
}
