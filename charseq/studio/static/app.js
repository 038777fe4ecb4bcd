// The studio page: a tab per view, switched by the URL's #hash. Each view is its own module.
import {getJSON} from "./api.js";
import {RunsView} from "./runs.js";
import {GenerateView} from "./generate.js";
import {InsideView} from "./inside.js";
import {ClassifyView} from "./classify.js";
import {TranslateView} from "./translate.js";

const state = {runs: []};
const views = {
  runs: new RunsView(state), generate: new GenerateView(state), inside: new InsideView(state),
  classify: new ClassifyView(state), translate: new TranslateView(state),
};

function show() {
  const name = (location.hash.slice(1).split("?")[0]) || "runs";
  const page = views[name] ? name : "runs";
  for (const key of Object.keys(views)) {
    document.getElementById(`page-${key}`).hidden = key !== page;
    document.getElementById(`nav-${key}`).classList.toggle("active", key === page);
  }
  views[page].shown?.();
}

async function start() {
  state.runs = (await getJSON("/api/runs")).runs;
  for (const view of Object.values(views)) view.setRuns(state.runs);
  window.addEventListener("hashchange", show);
  show();
  document.body.dataset.ready = "1";
}

start().catch(e => { document.querySelector("main").prepend(Object.assign(document.createElement("p"),
  {className: "error", textContent: `cannot load the runs: ${e.message}`})); });
