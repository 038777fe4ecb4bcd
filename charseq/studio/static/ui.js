// Small helpers shared by the views.

// Fill a <select> with the runs a view can use (keeping the current choice when it still exists).
export function fillRunSelect(select, runs) {
  const keep = select.value;
  select.innerHTML = "";
  for (const run of runs) {
    const option = document.createElement("option");
    option.value = run.name; option.textContent = `${run.name}  (${run.shape})`;
    select.append(option);
  }
  if (runs.some(r => r.name === keep)) select.value = keep;
}

export function setStatus(id, text, isError = false) {
  const el = document.getElementById(id);
  el.textContent = text;
  el.classList.toggle("error", isError);
}

export const $ = id => document.getElementById(id);
export const num = id => Number(document.getElementById(id).value);
