// The JSON API: the page uses nothing else.

// An error of the API, in the page's terms: the API names its fields as JSON ("top_p", use
// "unknown": "skip"), the page's controls are labelled top-p and unknown, so a remedy says which
// control to set.
export class ApiError extends Error {
  constructor(message) { super(inPageTerms(message)); }
}

export function inPageTerms(message) {
  const label = field => field.replace(/_/g, "-");
  return String(message)
    .replace(/(use )?"(\w+)": true/g, (_, use, field) => `tick ${label(field)}`)
    .replace(/(use )?"(\w+)": ("[^"]*"|[^\s,;)]+)/g, (_, use, field, value) => `set ${label(field)} to ${value.replace(/^"|"$/g, "")}`)
    .replace(/\b(top_k|top_p|n_best|length_penalty)\b/g, label);
}

export async function getJSON(url) {
  const response = await fetch(url);
  const data = await response.json();
  if (!response.ok) throw new ApiError(data.error || response.statusText);
  return data;
}

export async function postJSON(url, body) {
  const response = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                                     body: JSON.stringify(body)});
  const data = await response.json();
  if (!response.ok) throw new ApiError(data.error || response.statusText);
  return data;
}

// POST that answers text/event-stream: calls onEvent(kind, data) per event until the stream ends.
// Aborting `signal` closes the connection, which stops the generation on the server.
export async function postStream(url, body, onEvent, signal) {
  const response = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                                     body: JSON.stringify(body), signal});
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    throw new ApiError(data.error || response.statusText);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, {stream: true});
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let kind = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) kind = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      onEvent(kind, JSON.parse(data));
    }
  }
}
