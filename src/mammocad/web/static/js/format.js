// Small helpers to build DOM and print values the same way everywhere.

/** Element with attributes ({class, text, dataset, on*} handled) and children. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function svg(tag, attributes = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "class") node.setAttribute("class", value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, String(value));
  }
  return node;
}

/** Probability as shown to users: 2 decimals (the schema rounds to 2 too). */
export function probability(value) {
  return typeof value === "number" ? value.toFixed(2) : "—";
}

/** Colour class of a malignancy probability, as the overlay pictures use. */
export function riskClass(value) {
  if (typeof value !== "number") return "risk-none";
  if (value >= 0.5) return "risk-high";
  return value >= 0.2 ? "risk-mid" : "risk-low";
}

/** Colour class of a study's (or breast's) probability: by its suspicion, whose thresholds
 * the model bundle sets (e.g. "high" from 0.53), where the result has one — the fixed cut-offs
 * of riskClass would draw 0.51 red beside the word "intermediate". */
export function studyRiskClass(value, suspicion) {
  const bySuspicion = { high: "risk-high", intermediate: "risk-mid", low: "risk-low" };
  return bySuspicion[suspicion] || riskClass(value);
}

export function labelText(label) {
  return String(label || "finding").replaceAll("_", " ");
}

/** ISO time → local "YYYY-MM-DD HH:MM" (and the full value as a title). */
export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}`
  );
}

/** DICOM DA (+ TM) → "YYYY-MM-DD HH:MM", or null. */
export function dicomWhen(date, time) {
  if (!date || date.length !== 8) return null;
  let text = `${date.slice(0, 4)}-${date.slice(4, 6)}-${date.slice(6, 8)}`;
  if (time && time.length >= 4) text += ` ${time.slice(0, 2)}:${time.slice(2, 4)}`;
  return text;
}

export function shortUid(uid) {
  if (!uid) return "—";
  return uid.length > 22 ? `…${uid.slice(-20)}` : uid;
}

let toastTimer = null;

/** A short message at the top of the page (errors stay longer). */
export function toast(message, { error = false } = {}) {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.classList.toggle("error", error);
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    box.hidden = true;
  }, error ? 8000 : 3500);
}
