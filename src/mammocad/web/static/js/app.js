// Entry point: API key box, service status, and the two pages (#/ and #/studies/<uid>).

import { getKey, getReader, request, routes, setKey, setReader } from "./api.js";
import { toast } from "./format.js";
import { StudyPage } from "./study.js";
import { Uploader } from "./upload.js";
import { Worklist } from "./worklist.js";

const worklist = new Worklist();
const study = new StudyPage();
new Uploader({ onChange: () => worklist.refresh() });

function route() {
  const match = /^#\/studies\/(.+)$/.exec(window.location.hash);
  if (match) {
    worklist.hide();
    study.open(decodeURIComponent(match[1]));
  } else {
    study.close();
    worklist.show();
  }
  document.getElementById("nav-worklist").toggleAttribute("aria-current", !match);
}

function bindLogin() {
  const form = document.getElementById("login-form");
  const keyInput = document.getElementById("api-key");
  const readerInput = document.getElementById("reader-id");
  const state = document.getElementById("login-state");
  keyInput.value = getKey();
  readerInput.value = getReader();
  state.textContent = getKey() ? "key saved" : "no key";
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setKey(keyInput.value.trim());
    setReader(readerInput.value.trim());
    state.textContent = getKey() ? "key saved" : "no key";
    form.classList.remove("needed");
    toast("Saved.");
    route();
    loadModels();
  });
  document.getElementById("login-clear").addEventListener("click", () => {
    setKey("");
    keyInput.value = "";
    state.textContent = "no key";
    // reload what is on screen without the key, so no patient data stays behind it
    route();
    loadModels();
  });
  window.addEventListener("mammocad:unauthorized", () => {
    form.classList.add("needed");
    state.textContent = getKey() ? "key refused" : "key needed";
    // ask once, without taking the caret from a field the reader is typing in
    if (document.activeElement === document.body) keyInput.focus({ preventScroll: true });
  });
}

async function checkService() {
  const status = document.getElementById("service-status");
  try {
    const response = await fetch(routes.ready(), { headers: { Accept: "application/json" } });
    status.textContent = response.ok ? "service ready" : "service not ready";
    status.className = `service-status ${response.ok ? "ok" : "bad"}`;
  } catch {
    status.textContent = "service unreachable";
    status.className = "service-status bad";
  }
  setTimeout(checkService, 15000);
}

async function loadModels() {
  const info = document.getElementById("model-info");
  try {
    const body = await request(routes.models());
    const loaded = body?.loaded || {};
    info.textContent = loaded.name ? `model: ${loaded.name} ${loaded.version || ""}` : "";
  } catch {
    info.textContent = "";
  }
}

bindLogin();
window.addEventListener("hashchange", route);
route();
checkService();
loadModels(); // also without a key: a service with keys off answers it
