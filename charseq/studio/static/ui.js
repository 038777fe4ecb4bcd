// Small helpers shared by the views: run menus, empty states, status lines, state kept in the URL.
import {getJSON} from "./api.js";

export const $ = id => document.getElementById(id);

// A number field's value. An empty one (or one the browser cannot read as a number, which it reports
// as empty) is refused by the field's name, where Number("") would quietly send 0: a length of 0.
// A field that counts (no step attribute: a step of 1) is refused by name for a fraction too, where the
// request would be refused as "not an integer", words the page does not use.
export function num(id) {
  const el = $(id);
  if (el.value.trim() === "") throw new Error(`${fieldName(el)} is empty: type a number`);
  const value = Number(el.value);
  if (!el.hasAttribute("step") && !Number.isInteger(value)) throw new Error(`${fieldName(el)} must be a whole number, not ${el.value}`);
  return value;
}

// What a control's label says: the label's own words, without the control's.
function fieldName(el) {
  const label = el.labels?.[0];
  const words = label ? [...label.childNodes].filter(n => n.nodeType === Node.TEXT_NODE).map(n => n.textContent).join(" ") : "";
  return words.trim().replace(/\s+/g, " ") || el.id;
}

// Fill a <select> with the runs a view can use, keeping the current choice when it still exists.
// Rebuilt only when the list changed, so a poll never disturbs a menu someone is using.
export function fillRunSelect(select, runs) {
  const names = runs.map(r => `${r.name}\u0000${r.shape}`).join("\n");
  if (select.dataset.names === names) return false;
  select.dataset.names = names;
  const shown = select.value, keep = shown || select.dataset.wanted;
  select.innerHTML = "";
  for (const run of runs) select.append(new Option(`${run.name}  (${run.shape})`, run.name));
  if (runs.some(r => r.name === keep)) select.value = keep;
  if (runs.length && select.dataset.wanted) chooseRun(select, select.dataset.wanted);
  else if (shown && runs.length && select.value !== shown) {  // the run shown went: the view follows the menu
    select.dispatchEvent(new Event("change"));
    missingRun(select, `run "${shown}" is no longer served (deleted or moved); showing "${select.value}"`);
  }
  return true;
}

// The run a link names: chosen if it is served; else the menu keeps a served one and a line beside it
// says so, since a link to a deleted or renamed run would otherwise open another run without a word.
export function chooseRun(select, name) {
  delete select.dataset.wanted;
  missingRun(select, null);
  if (!select.options.length) { select.dataset.wanted = name; return; }  // the runs are not listed yet
  if ([...select.options].some(o => o.value === name)) {
    if (select.value !== name) { select.value = name; select.dispatchEvent(new Event("change")); }
    return;
  }
  missingRun(select, `no run named "${name}" is served; showing "${select.value}"`);
}

// The line beside a run menu saying the run asked for is not there (`text`), until another is chosen;
// null takes it away.
function missingRun(select, text) {
  const label = select.closest("label") || select;
  label.parentElement.querySelector(`.missing-run[data-for="${select.id}"]`)?.remove();
  if (text === null) return;
  const note = Object.assign(document.createElement("span"), {className: "missing-run error", role: "alert", textContent: text});
  note.dataset.for = select.id;
  label.after(note);
  select.addEventListener("change", () => note.remove(), {once: true});
}

// A view with no run of its head: its controls are disabled and a line says what to train.
export function setEmpty(prefix, empty) {
  $(`${prefix}-empty`).hidden = !empty;
  $(`${prefix}-work`).disabled = empty;
}

// The runs of one head in a view's menu (`prefix`-run), or the view's empty state when it has none.
export function showRunsOf(task, runs, prefix) {
  const here = runs.filter(r => r.task === task);
  fillRunSelect($(`${prefix}-run`), here);
  setEmpty(prefix, !here.length);
}

export function setStatus(id, text, isError = false) {
  const el = document.getElementById(id);
  el.textContent = text;
  el.classList.toggle("error", isError);
}

// State in the URL: "#page?key=value&...", so a reload or a shared link opens the same view.
export function hashParams() {
  const query = location.hash.split("?")[1] || "";
  return new URLSearchParams(query);
}

export function currentPage() { return (location.hash.slice(1).split("?")[0]) || "runs"; }

export function writeHash(page, values) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(values)) {
    if (Array.isArray(v)) v.forEach(item => params.append(k, item));  // a list: the key once per item
    else if (v !== "" && v != null) params.set(k, v);
  }
  const query = params.toString();
  history.replaceState(null, "", `#${page}${query ? "?" + query : ""}`);
}

// Controls whose values live in the URL while their page is shown: {param: element id}.
export function bindControls(page, controls, extra = () => ({})) {
  const values = () => {
    const out = {};
    for (const [key, id] of Object.entries(controls)) {
      const el = $(id);
      const value = el.type === "checkbox" ? (el.checked ? "1" : "") : el.value;
      if (value !== el.dataset.initial) out[key] = value;
    }
    return {...out, ...extra()};
  };
  const save = () => { if (currentPage() === page) writeHash(page, values()); };
  for (const id of Object.values(controls)) {
    const el = $(id);
    el.dataset.initial = el.type === "checkbox" ? (el.defaultChecked ? "1" : "") : el.defaultValue ?? "";
    if (el.tagName === "SELECT") el.dataset.initial = isRunMenu(id) ? "" : el.options[0]?.value ?? "";  // a run is always kept
    el.addEventListener("change", save);
    el.addEventListener("input", save);
  }
  const restore = params => {
    for (const [key, id] of Object.entries(controls)) {
      if (!params.has(key)) continue;
      const el = $(id), value = params.get(key);
      if (el.type === "checkbox") el.checked = value === "1";
      else if (isRunMenu(id)) chooseRun(el, value);
      else { el.value = value; if (el.tagName === "SELECT") el.dataset.wanted = value; }
    }
  };
  // A link opened over the page already shown (pasted into the address bar, or Back and Forward): its
  // values, and the defaults for the settings it leaves out, since a link names only what differs from
  // them (the run excepted: the one chosen stays). A control that changes fires "change", so the view
  // follows it as it follows a person's edit.
  const apply = params => {
    for (const [key, id] of Object.entries(controls)) {
      const el = $(id);
      if (isRunMenu(id)) { if (params.has(key)) chooseRun(el, params.get(key)); continue; }
      const value = params.has(key) ? params.get(key) : el.dataset.initial;
      const before = el.type === "checkbox" ? el.checked : el.value;
      if (el.type === "checkbox") el.checked = value === "1";
      else el.value = value;
      if (el.tagName === "SELECT" && el.selectedIndex < 0) el.selectedIndex = 0;  // a menu shows one of its choices
      if ((el.type === "checkbox" ? el.checked : el.value) !== before) el.dispatchEvent(new Event("change"));
    }
    save();
  };
  return {save, restore, apply};
}

const isRunMenu = id => id.endsWith("-run");

// n-best is at most the beam's width: the field's arrows stop there, and a larger number typed is
// said beside the answer, not cut without a word. Returns (beam) => {n_best to send, note to show}.
export function nBestWithinBeam(nbestId, beamId) {
  const cap = () => { $(nbestId).max = String(Math.max(1, Math.min(16, Math.floor(Number($(beamId).value)) || 1))); };
  for (const kind of ["input", "change"]) $(beamId).addEventListener(kind, cap);
  cap();
  return beam => {
    const asked = num(nbestId);
    return {n_best: Math.min(asked, beam),
            note: asked > beam ? `; n-best ${asked} is more than the beam's ${beam} hypotheses: ${beam} shown` : ""};
  };
}

// Whether a key press is an Enter that submits. The Enter that confirms a word typed with an input method
// (pinyin to 春风, say) is the input method's, not the page's: submitting then would send half a word.
// keyCode 229 is how some browsers mark a key the input method takes, without isComposing.
export function submitsEnter(e) {
  return e.key === "Enter" && !e.isComposing && e.keyCode !== 229;
}

// Ctrl+Enter (or Cmd+Enter) inside `area` presses `button`.
export function ctrlEnter(area, button) {
  $(area).addEventListener("keydown", e => {
    if (submitsEnter(e) && (e.ctrlKey || e.metaKey)) { e.preventDefault(); if (!$(button).disabled) $(button).click(); }
  });
}

// One-click examples from the run's validation data (GET /api/runs/NAME/examples): a row of buttons
// in `box`, each drawn by render(example, button) and calling pick(example) when pressed.
export async function showExamples(box, run, render, pick) {
  box.replaceChildren();
  box.dataset.run = run || "";
  if (!run) return;
  let examples = [];
  try { ({examples} = await getJSON(`/api/runs/${encodeURIComponent(run)}/examples`)); } catch { return; }
  if (box.dataset.run !== run) return;  // another run was chosen meanwhile
  if (!examples.length) return;
  box.append(Object.assign(document.createElement("span"), {className: "hint", textContent: "validation examples:"}));
  for (const example of examples) {
    const button = Object.assign(document.createElement("button"), {type: "button", className: "example"});
    render(example, button);
    button.addEventListener("click", () => pick(example));
    box.append(button);
  }
}

// A short label for an example's text: its first characters, spaces shown, the whole in the tooltip.
export function exampleLabel(button, text, chars = 32) {
  const flat = text.replace(/\s+/g, " ").trim();
  button.textContent = flat.length > chars ? flat.slice(0, chars - 1) + "…" : flat;
  button.title = text;
}
