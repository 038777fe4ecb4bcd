// The studio page: a tab per view, switched by the URL's #hash (which also keeps each view's state).
// Runs is the studio's own view; each head's tabs come from its folder (the server lists them in
// #head-pages). The run list is polled every few seconds; each view updates in place from it.
import {getJSON} from "./api.js";
import {RunsView} from "./runs.js";
import {currentPage, hashParams} from "./ui.js";

const POLL_MS = 3000;
const state = {runs: []};
const views = {runs: new RunsView(state)};

async function loadHeadViews() {
  const pages = JSON.parse(document.getElementById("head-pages").textContent);
  const modules = await Promise.all(pages.map(p => import(p.script)));
  pages.forEach((p, i) => { views[p.page] = new modules[i].default(state, p.task); });
}

function show() {
  // A tab the page does not have (mistyped, or from an older link): the runs, with the address saying so, or
  // the runs' settings would never reach the address bar, which they are written to only under #runs.
  if (!views[currentPage()]) history.replaceState(null, "", "#runs");
  const page = currentPage();
  for (const key of Object.keys(views)) {
    document.getElementById(`page-${key}`).hidden = key !== page;
    const link = document.getElementById(`nav-${key}`);
    link.classList.toggle("active", key === page);
    if (key === page) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  // The tab's name in the title too: browser tabs, the history and Back's menu tell the views apart.
  const title = document.getElementById(`nav-${page}`).textContent;
  document.title = page === "runs" ? "charseq studio" : `${title} · charseq studio`;
  views[page].shown?.();
}

// A link with settings opened over the page (pasted into the address bar, or Back and Forward): the view
// takes them, where a reload would. A tab's own link (#generate) has none, and the view keeps what it shows.
function followLink() {
  const view = views[currentPage()];
  if (view && location.hash.includes("?")) view.follow?.(hashParams());
  show();
}

function setRuns(runs) {
  state.runs = runs;
  for (const view of Object.values(views)) view.setRuns(runs);
}

async function poll() {
  try {
    setRuns((await getJSON("/api/runs")).runs);
    document.getElementById("offline").hidden = true;
    views.runs.poll();
  } catch (e) {
    const banner = document.getElementById("offline");
    banner.textContent = `the studio does not answer (${e.message}); retrying`;
    banner.hidden = false;
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

async function start() {
  await loadHeadViews();
  setRuns((await getJSON("/api/runs")).runs);
  window.addEventListener("hashchange", followLink);
  show();
  document.body.dataset.ready = "1";
  setTimeout(poll, POLL_MS);
}

start().catch(e => { document.querySelector("main").prepend(Object.assign(document.createElement("p"),
  {className: "error", textContent: `cannot load the runs: ${e.message}`})); });
