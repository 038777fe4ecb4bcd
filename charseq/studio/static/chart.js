// Charts through plotly.js (served from the installed plotly package): hover readout, zoom and pan,
// log y, PNG export from its toolbar, and a CSV export added to that toolbar.

// Tableau 10, then further hues by the golden angle: a run keeps its colour for the page's life.
const PALETTE = ["#4e79a7", "#e15759", "#59a14f", "#f28e2b", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7",
                 "#9c755f", "#bab0ac"];
const assigned = new Map();
export function runColor(name) {
  if (!assigned.has(name)) {
    const i = assigned.size;
    assigned.set(name, i < PALETTE.length ? PALETTE[i] : `hsl(${(i * 137.5) % 360}, 55%, 50%)`);
  }
  return assigned.get(name);
}
export const classColor = k => PALETTE[k % PALETTE.length];

export const available = () => typeof window.Plotly !== "undefined";

// TensorBoard's smoothing: an exponential moving average, debiased at the start.
export function smooth(ys, weight) {
  if (!(weight > 0)) return ys;
  let last = 0, n = 0;
  return ys.map(y => { n += 1; last = last * weight + (1 - weight) * y; return last / (1 - weight ** n); });
}

function theme() {
  const style = getComputedStyle(document.body);
  return {fg: style.getPropertyValue("--fg").trim() || "#222", grid: style.getPropertyValue("--grid").trim() || "#e5e5e5",
          muted: style.getPropertyValue("--muted").trim() || "#777"};
}

function download(name, text, type) {
  const link = Object.assign(document.createElement("a"), {href: URL.createObjectURL(new Blob([text], {type})), download: name});
  document.body.append(link); link.click(); link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

const csvCell = v => (/[",\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v));

// The data a chart shows as CSV text: series, x, y (the raw values, not the smoothed ones).
export function chartCSV(series, xName, yName) {
  const lines = [["series", xName, yName].map(csvCell).join(",")];
  for (const s of series) s.x.forEach((x, i) => lines.push([s.name, x instanceof Date ? x.toISOString() : x, s.y[i]].map(csvCell).join(",")));
  return lines.join("\n") + "\n";
}

/* Draw (or update in place: zoom survives) a line chart in `div`.
   series: [{name, color, x: [...], y: [...], dash}]; options: {title, xTitle, yTitle, xType, logY, smoothing,
   yRange, file, legend} */
export function lineChart(div, series, options) {
  const {title = "", xTitle = "", yTitle = "", xType = "linear", logY = false, smoothing = 0, yRange = null,
         file = "chart", legend = true, revision = ""} = options;
  const t = theme();
  const traces = [];
  for (const s of series) {
    const smoothed = smoothing > 0 && s.y.length > 1;
    const hover = `<b>${s.name.replace(/</g, "&lt;")}</b><br>${xTitle} %{x}<br>${yTitle.split(" (")[0]} %{customdata:.6~g}` +
                  (smoothed ? " (smoothed %{y:.6~g})" : "") + "<extra></extra>";
    if (smoothed) traces.push({x: s.x, y: s.y, type: "scatter", mode: "lines", line: {color: s.color, width: 1, dash: s.dash},
                               opacity: 0.3, hoverinfo: "skip", showlegend: false, legendgroup: s.name});
    traces.push({x: s.x, y: smoothed ? smooth(s.y, smoothing) : s.y, customdata: s.y, name: s.name, legendgroup: s.name,
                 type: "scatter", mode: s.y.length > 40 ? "lines" : "lines+markers", marker: {size: 4},
                 line: {color: s.color, width: 2, dash: s.dash}, hovertemplate: hover});
  }
  const empty = !series.some(s => s.y.length);
  const layout = {
    // The title sits just above the plot, below the toolbar, which a touch screen always shows and a
    // narrow chart has no room for beside a long title.
    title: {text: title, font: {size: 14}, x: 0, xanchor: "left", xref: "paper", y: 1, yref: "paper", yanchor: "bottom",
            pad: {b: 6}},
    margin: {l: 64, r: 16, t: title ? 56 : 36, b: legend ? 64 : 40}, height: 360, autosize: true,
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", font: {color: t.fg, size: 12},
    hovermode: "closest", dragmode: "zoom", uirevision: revision,
    xaxis: {title: {text: xTitle}, type: xType, gridcolor: t.grid, zeroline: false, automargin: true},
    yaxis: {title: {text: yTitle}, type: logY ? "log" : "linear", gridcolor: t.grid, zeroline: false, automargin: true,
            ...(yRange && !logY ? {range: yRange} : {})},
    showlegend: legend && series.length > 0,
    legend: {orientation: "h", x: 0, xanchor: "left", yref: "container", y: 0, yanchor: "bottom", font: {size: 11}},
    annotations: empty ? [{text: "no data yet", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5,
                           font: {color: t.muted}}] : [],
  };
  // The CSV button downloads what the chart shows now. The config object stays the same from one
  // redraw to the next: Plotly.react draws a chart afresh, losing the user's zoom, when its config changes.
  div.chartCSV = () => chartCSV(series, xTitle, yTitle);
  if (div.chartConfig?.toImageButtonOptions.filename !== file) {
    div.chartConfig = {
      responsive: true, displaylogo: false, scrollZoom: false,
      toImageButtonOptions: {format: "png", filename: file, scale: 2},
      modeBarButtonsToRemove: ["lasso2d", "select2d"],
      modeBarButtonsToAdd: [{name: "csv", title: "Download data as CSV", icon: window.Plotly.Icons.disk,
                             click: () => download(`${file}.csv`, div.chartCSV(), "text/csv")}],
    };
  }
  return window.Plotly.react(div, traces, layout, div.chartConfig);
}
