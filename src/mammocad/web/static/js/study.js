// The study page: state until the analysis is done, then the hanging, the findings with
// feedback buttons, quality and study messages.

import { getReader, request, routes } from "./api.js";
import {
  dicomWhen,
  el,
  labelText,
  probability,
  riskClass,
  studyRiskClass,
  shortUid,
  toast,
} from "./format.js";
import { SLOTS, assignSlots, windowLut } from "./hanging.js";
import { SlotView } from "./viewer.js";

const POLL_MS = 1500;
const DEFAULT_WINDOW = { width: 256, centre: 128, invert: false };

/** The result document inside a study response (the API may also return it bare). */
export function resultOf(body) {
  if (!body) return null;
  if (body.result && typeof body.result === "object") return body.result;
  return body.schema_version ? body : null;
}

/**
 * The service state of a study response: queued, processing, done or failed. (The bare
 * result's own "status" is complete/partial/rejected: it is only trusted beside "result".)
 */
export function stateOf(body) {
  if (!body) return "unknown";
  if ("result" in body && body.status) return body.status;
  return body.state || body.job?.status || (resultOf(body) ? "done" : "unknown");
}

/** The breasts' leading candidates (x_leading_candidate): boxes not reported (below the report
 * threshold or past the image's limit of findings) that drive an intermediate or high breast probability. */
export function leadingCandidates(result) {
  return (result?.breasts || []).map((breast) => breast.x_leading_candidate).filter(Boolean);
}

export class StudyPage {
  constructor() {
    this.page = document.getElementById("study-page");
    this.hanging = document.getElementById("hanging");
    this.title = document.getElementById("study-title");
    this.stateChip = document.getElementById("study-state");
    this.probabilityChip = document.getElementById("study-probability");
    this.summary = document.getElementById("summary-body");
    this.findingList = document.getElementById("finding-list");
    this.messageList = document.getElementById("message-list");
    this.feedbackState = document.getElementById("study-feedback-state");
    this.comment = document.getElementById("feedback-comment");
    this.readingLabel = document.getElementById("feedback-label");
    this.boxesButton = document.getElementById("toggle-boxes");
    this.widthInput = document.getElementById("wl-width");
    this.levelInput = document.getElementById("wl-level");
    this.invertInput = document.getElementById("wl-invert");
    this.slots = [];
    this.uid = null;
    this.timer = null;
    this.window = { ...DEFAULT_WINDOW };
    this.windowFrame = 0;
    this.bindTools();
  }

  bindTools() {
    this.boxesButton.addEventListener("click", () => this.toggleBoxes());
    document.getElementById("zoom-in").addEventListener("click", () => this.zoomAll(1.25));
    document.getElementById("zoom-out").addEventListener("click", () => this.zoomAll(0.8));
    document.getElementById("reset-view").addEventListener("click", () => this.resetAll());
    this.widthInput.addEventListener("input", () => this.setWindow({ width: +this.widthInput.value }));
    this.levelInput.addEventListener("input", () => this.setWindow({ centre: +this.levelInput.value }));
    this.invertInput.addEventListener("change", () => this.setWindow({ invert: this.invertInput.checked }));
    document.getElementById("study-agree").addEventListener("click", () => this.sendFeedback(null, true));
    document.getElementById("study-disagree").addEventListener("click", () => this.sendFeedback(null, false));
    document.addEventListener("keydown", (event) => {
      if (this.page.hidden || event.target.closest("input, textarea, select")) return;
      if (event.key === "b" || event.key === "B") this.toggleBoxes();
      else if (event.key === "r" || event.key === "R") this.resetAll();
    });
  }

  async open(uid) {
    this.close();
    this.uid = uid;
    this.page.hidden = false;
    this.title.textContent = `Study ${shortUid(uid)}`;
    this.title.title = uid;
    this.clearPanels("Loading…");
    await this.poll();
  }

  close() {
    clearTimeout(this.timer);
    this.timer = null;
    for (const slot of this.slots) slot.destroy();
    this.slots = [];
    this.uid = null;
    this.page.hidden = true;
  }

  clearPanels(text) {
    delete this.hanging.dataset.loaded;
    this.hanging.replaceChildren(el("p", { class: "muted hanging-wait", text }));
    this.summary.replaceChildren();
    this.findingList.replaceChildren();
    this.messageList.replaceChildren();
    this.feedbackState.textContent = "";
    this.stateChip.textContent = "";
    this.probabilityChip.textContent = "";
  }

  async poll() {
    const uid = this.uid;
    let body;
    try {
      body = await request(routes.study(uid));
    } catch (error) {
      if (uid !== this.uid) return;
      this.clearPanels(`Cannot load the study: ${error.message}`);
      if (error.status !== 404) this.timer = setTimeout(() => this.poll(), POLL_MS * 4);
      return;
    }
    if (uid !== this.uid) return;
    const state = stateOf(body);
    this.setState(state, body);
    const result = resultOf(body);
    if (state === "done" && result) {
      this.show(body, result);
    } else if (state === "failed") {
      const reason = body.error || body.job?.error || "the analysis failed";
      this.clearPanels(`Analysis failed: ${reason}`);
      this.setState(state, body);
    } else {
      const stage = body.job?.stage || body.stage;
      this.clearPanels(`Analysis ${state}${stage ? ` (${stage})` : ""}… this page updates itself.`);
      this.setState(state, body);
      this.timer = setTimeout(() => this.poll(), POLL_MS);
    }
  }

  setState(state, body) {
    this.stateChip.textContent = state;
    this.stateChip.className = `chip state-${state}`;
    const who = body.patient_id ? `Patient ${body.patient_id}` : "Study";
    const accession = body.accession_number || resultOf(body)?.accession_number;
    const date = dicomWhen(body.study_date, body.study_time);
    this.title.textContent = [who, accession ? `acc. ${accession}` : shortUid(this.uid), date]
      .filter(Boolean)
      .join(" · ");
  }

  show(body, result) {
    const p = result.malignancy_probability;
    this.probabilityChip.textContent =
      `P(malignancy) ${probability(p)}${result.suspicion ? ` · ${result.suspicion}` : ""}`;
    this.probabilityChip.className = `chip ${studyRiskClass(p, result.suspicion)}`;
    this.buildHanging(body, result);
    this.fillSummary(body, result);
    this.fillFindings(result);
    this.fillMessages(result);
  }

  buildHanging(body, result) {
    for (const slot of this.slots) slot.destroy();
    delete this.hanging.dataset.loaded;
    const { slots, others } = assignSlots(result.images || []);
    const candidates = leadingCandidates(result);
    const hooks = {
      adjustWindow: (dx, dy) => this.dragWindow(dx, dy),
      hover: (id, on) => this.highlight(id, on),
      select: (id) => this.select(id),
    };
    this.slots = SLOTS.map((slot) => {
      const image = slots[slot.id];
      const pictureUrls = image ? this.pictureUrls(image, body) : [];
      const own = image ? candidates.filter((c) => c.sop_instance_uid === image.sop_instance_uid) : [];
      return new SlotView({ slot, image, pictureUrls, candidates: own, hooks });
    });
    this.hanging.replaceChildren(...this.slots.map((slot) => slot.element));
    this.hanging.classList.toggle("boxes-hidden", this.boxesButton.getAttribute("aria-pressed") === "false");
    if (others.length) {
      const names = others.map((image) => `${image.laterality || "?"}${image.view || "?"}`);
      this.hanging.append(
        el("p", { class: "muted others", text: `Not in the hanging: ${names.join(", ")}` }),
      );
    }
    const lut = this.lut();
    Promise.all(this.slots.map((slot) => slot.load())).then(() => {
      for (const slot of this.slots) slot.applyWindow(lut);
      this.hanging.dataset.loaded = "true";
    });
  }

  pictureUrls(image, body) {
    const stored = (body.images || []).find((i) => i.sop_instance_uid === image.sop_instance_uid);
    const urls = [routes.display(this.uid, image.sop_instance_uid)];
    if (stored?.overlay_url) urls.push(stored.overlay_url);
    return urls;
  }

  fillSummary(body, result) {
    const rows = [
      ["Result", result.status],
      ["P(malignancy)", probability(result.malignancy_probability)],
      ["Suspicion", result.suspicion || "—"],
    ];
    for (const breast of result.breasts || []) {
      const density = breast.density ? ` · density ${breast.density}` : "";
      rows.push([
        `${breast.laterality === "R" ? "Right" : "Left"} breast`,
        `${probability(breast.malignancy_probability)}${density}`,
      ]);
    }
    if (result.model) rows.push(["Model", `${result.model.name} ${result.model.version}`]);
    if (result.timings_ms?.total) rows.push(["Time", `${(result.timings_ms.total / 1000).toFixed(1)} s`]);
    rows.push(["Study UID", result.study_instance_uid]);
    this.summary.replaceChildren(
      el("dl", { class: "summary" }, rows.map(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])),
    );
    if (result.model?.intended_use) {
      this.summary.append(el("p", { class: "muted small", text: result.model.intended_use }));
    }
  }

  fillFindings(result) {
    const items = [];
    for (const image of result.images || []) {
      for (const finding of image.findings || []) items.push({ image, finding });
    }
    items.sort((a, b) => b.finding.malignancy_probability - a.finding.malignancy_probability);
    this.findingList.replaceChildren();
    const images = new Map((result.images || []).map((image) => [image.sop_instance_uid, image]));
    for (const candidate of leadingCandidates(result)) {
      const image = images.get(candidate.sop_instance_uid) || {};
      this.findingList.append(this.candidateItem(candidate, `${image.laterality || "?"}${image.view || "?"}`));
    }
    if (!items.length) {
      this.findingList.append(el("li", { class: "muted", text: "No findings." }));
      return;
    }
    for (const { image, finding } of items) {
      const where = `${image.laterality || "?"}${image.view || "?"}`;
      const state = el("span", { class: "feedback-state", "aria-live": "polite" });
      const agree = el("button", {
        type: "button",
        class: "agree",
        "aria-label": `Agree with ${labelText(finding.label)} on ${where}`,
        text: "Agree",
        onclick: () => this.sendFeedback(finding.id, true, state),
      });
      const disagree = el("button", {
        type: "button",
        class: "disagree",
        "aria-label": `Disagree with ${labelText(finding.label)} on ${where}`,
        text: "Disagree",
        onclick: () => this.sendFeedback(finding.id, false, state),
      });
      const linked = finding.linked_finding_ids?.length ? " · seen in both views" : "";
      const item = el(
        "li",
        { class: `finding-item ${riskClass(finding.malignancy_probability)}`, dataset: { findingId: finding.id }, tabindex: -1 },
        el("div", { class: "finding-line" },
          el("span", { class: "swatch", "aria-hidden": "true" }),
          el("strong", { text: labelText(finding.label) }),
          el("span", { class: "where", text: where }),
          el("span", { class: "prob", title: "malignancy probability", text: probability(finding.malignancy_probability) })),
        el("div", { class: "muted small", text: `detector score ${probability(finding.score)}${linked}` }),
        el("div", { class: "feedback-buttons" }, agree, disagree, state),
      );
      item.addEventListener("mouseenter", () => this.highlight(finding.id, true));
      item.addEventListener("mouseleave", () => this.highlight(finding.id, false));
      this.findingList.append(item);
    }
  }

  /** A leading candidate: no feedback buttons (it is not a reported finding). */
  candidateItem(candidate, where) {
    const item = el(
      "li",
      { class: "finding-item candidate", dataset: { findingId: candidate.id }, tabindex: -1 },
      el("div", { class: "finding-line" },
        el("span", { class: "swatch", "aria-hidden": "true" }),
        el("strong", { text: `Candidate: ${labelText(candidate.label)}` }),
        el("span", { class: "where", text: where }),
        el("span", { class: "prob", title: "malignancy probability", text: probability(candidate.malignancy_probability) })),
      el("div", {
        class: "muted small",
        text: `detector score ${probability(candidate.score)}, not reported (below the report threshold or past the image's limit of findings) — ` +
          "the box behind this breast's probability (dashed)",
      }),
    );
    item.addEventListener("mouseenter", () => this.highlight(candidate.id, true));
    item.addEventListener("mouseleave", () => this.highlight(candidate.id, false));
    return item;
  }

  fillMessages(result) {
    const messages = [...(result.messages || [])];
    for (const image of result.images || []) {
      if (image.status === "rejected") {
        // named by its view, never by `source`: that is a path on the server, not the reader's
        const code = image.rejection_code || "unreadable";
        const why = (image.quality?.issues || []).find((issue) => issue.code === code);
        messages.push({
          code: image.rejection_code || "rejected",
          severity: "error",
          text: `${image.laterality || "?"}${image.view || "?"} image rejected (${code})${why ? `: ${why.text}` : ""}`,
        });
      }
    }
    this.messageList.replaceChildren();
    if (!messages.length) {
      this.messageList.append(el("li", { class: "muted", text: "No messages." }));
      return;
    }
    for (const message of messages) {
      this.messageList.append(
        el("li", { class: message.severity, dataset: { code: message.code } },
          el("span", { class: "severity", text: message.severity }), ` ${message.text}`),
      );
    }
  }

  highlight(findingId, on) {
    for (const slot of this.slots) slot.highlight(findingId, on);
    const item = this.findingList.querySelector(`[data-finding-id="${CSS.escape(findingId)}"]`);
    if (item) item.classList.toggle("active", on);
  }

  select(findingId) {
    const item = this.findingList.querySelector(`[data-finding-id="${CSS.escape(findingId)}"]`);
    if (item) {
      item.scrollIntoView({ block: "nearest" });
      item.focus();
    }
  }

  toggleBoxes() {
    const show = this.boxesButton.getAttribute("aria-pressed") !== "true";
    this.boxesButton.setAttribute("aria-pressed", String(show));
    this.boxesButton.textContent = `Findings: ${show ? "on" : "off"}`;
    this.hanging.classList.toggle("boxes-hidden", !show);
  }

  zoomAll(factor) {
    for (const slot of this.slots) slot.zoom(factor);
  }

  resetAll() {
    for (const slot of this.slots) slot.reset();
    this.setWindow({ ...DEFAULT_WINDOW });
  }

  lut() {
    return windowLut(this.window.width, this.window.centre, this.window.invert);
  }

  dragWindow(dx, dy) {
    // horizontal: contrast (width), vertical: brightness (level), as on reading stations
    this.setWindow({
      width: Math.min(512, Math.max(1, this.window.width + dx)),
      centre: Math.min(255, Math.max(0, this.window.centre - dy)),
    });
  }

  setWindow(change) {
    Object.assign(this.window, change);
    this.widthInput.value = String(this.window.width);
    this.levelInput.value = String(this.window.centre);
    this.invertInput.checked = this.window.invert;
    if (this.windowFrame) return;
    // many pointer moves per frame: re-map the pixels once per frame
    this.windowFrame = requestAnimationFrame(() => {
      this.windowFrame = 0;
      const lut = this.lut();
      for (const slot of this.slots) slot.applyWindow(lut);
      const { width, centre, invert } = this.window;
      this.hanging.dataset.window = `${width}/${centre}/${invert ? "inverted" : "normal"}`;
    });
  }

  async sendFeedback(findingId, agree, stateNode = this.feedbackState) {
    const body = { reader_id: getReader() || "anonymous" };
    if (findingId) {
      body.findings = [{ finding_id: findingId, agree }];
    } else {
      body.study = { agree };
      const comment = this.comment.value.trim();
      if (comment) body.study.comment = comment;
      if (this.readingLabel.value) body.study.corrected_label = this.readingLabel.value;
    }
    stateNode.textContent = "sending…";
    try {
      await request(routes.feedback(this.uid), { method: "POST", json: body });
      stateNode.textContent = agree ? "✓ agreed" : "✗ disagreed";
      stateNode.dataset.sent = agree ? "agree" : "disagree";
      toast("Feedback recorded — thank you.");
    } catch (error) {
      stateNode.textContent = `not sent: ${error.message}`;
      toast(`Feedback not sent: ${error.message}`, { error: true });
    }
  }
}
