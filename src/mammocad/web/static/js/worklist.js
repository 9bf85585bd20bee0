// The worklist: every study the service holds, newest first, a page at a time, refreshed
// every few seconds.

import { request, routes } from "./api.js";
import { dicomWhen, el, probability, shortUid, studyRiskClass, toast, when } from "./format.js";

const REFRESH_MS = 5000;
// studies a page (the API's default limit; older ones are reached with "Older →")
export const PAGE_SIZE = 50;

/** The list inside a worklist response: a bare array or {studies|items: [...]}. */
export function studiesOf(body) {
  if (Array.isArray(body)) return body;
  if (!body || typeof body !== "object") return [];
  return body.studies || body.items || body.results || [];
}

export class Worklist {
  constructor() {
    this.page = document.getElementById("worklist-page");
    this.body = document.getElementById("worklist-body");
    this.empty = document.getElementById("worklist-empty");
    this.updated = document.getElementById("worklist-updated");
    this.auto = document.getElementById("auto-refresh");
    this.pager = document.getElementById("worklist-pager");
    this.range = document.getElementById("worklist-range");
    this.newer = document.getElementById("worklist-newer");
    this.older = document.getElementById("worklist-older");
    this.offset = 0;
    this.timer = null;
    this.newer.addEventListener("click", () => this.turn(-PAGE_SIZE));
    this.older.addEventListener("click", () => this.turn(PAGE_SIZE));
    document.getElementById("refresh-worklist").addEventListener("click", () => this.refresh());
    this.auto.addEventListener("change", () => this.schedule());
  }

  show() {
    this.page.hidden = false;
    this.refresh();
  }

  hide() {
    this.page.hidden = true;
    clearTimeout(this.timer);
    this.timer = null;
  }

  schedule() {
    clearTimeout(this.timer);
    this.timer = null;
    if (!this.page.hidden && this.auto.checked) {
      this.timer = setTimeout(() => this.refresh(), REFRESH_MS);
    }
  }

  turn(step) {
    this.offset = Math.max(0, this.offset + step);
    this.refresh();
  }

  async load() {
    const page = (offset) => request(`${routes.studies()}?limit=${PAGE_SIZE}&offset=${offset}`);
    let body = await page(this.offset);
    const total = typeof body?.total === "number" ? body.total : null;
    if (this.offset > 0 && total !== null && this.offset >= total) {
      // the page emptied (studies deleted meanwhile): show the last one that has studies
      this.offset = Math.max(0, Math.ceil(total / PAGE_SIZE) - 1) * PAGE_SIZE;
      body = await page(this.offset);
    }
    return { studies: studiesOf(body), total };
  }

  async refresh() {
    try {
      const { studies, total } = await this.load();
      this.fill(studies);
      this.paginate(studies.length, total);
      this.updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      this.updated.textContent = `not updated: ${error.message}`;
      if (error.status === 401 || error.status === 403) {
        // no (valid) key: what the last key could read must not stay on screen
        this.body.replaceChildren();
        this.pager.hidden = true;
      }
    }
    this.schedule();
  }

  paginate(count, total) {
    const more = total !== null ? this.offset + count < total : count >= PAGE_SIZE;
    this.pager.hidden = this.offset === 0 && !more;
    const last = this.offset + count;
    this.range.textContent = count
      ? `${this.offset + 1}–${last}${total !== null ? ` of ${total}` : ""}`
      : "";
    this.newer.disabled = this.offset === 0;
    this.older.disabled = !more;
  }

  fill(studies) {
    this.empty.hidden = studies.length > 0;
    this.body.replaceChildren(...studies.map((study) => this.row(study)));
  }

  row(study) {
    const uid = study.study_instance_uid;
    const href = `#/studies/${encodeURIComponent(uid)}`;
    const state = study.state || study.status || "unknown";
    const p = study.malignancy_probability;
    const received = study.created_at || study.received_at;
    const dicomDate = dicomWhen(study.study_date, study.study_time);
    const remove = el("button", {
      type: "button",
      class: "quiet danger",
      "aria-label": `Delete study ${uid}`,
      text: "Delete",
      onclick: (event) => {
        event.stopPropagation();
        this.remove(uid);
      },
    });
    const row = el(
      "tr",
      { dataset: { uid, state }, class: `state-${state}` },
      el("td", { text: study.patient_id || "—" }),
      el(
        "td",
        {},
        el("a", { href, title: uid, text: study.accession_number || shortUid(uid) }),
        dicomDate ? el("div", { class: "muted small", text: dicomDate }) : null,
      ),
      el("td", { title: received || "", text: when(received) }),
      el(
        "td",
        {},
        el("span", { class: `chip state-${state}`, text: state }),
        study.result_status ? el("span", { class: "muted small", text: ` ${study.result_status}` }) : null,
        // why it failed, so the reader need not open every failed study to find out
        study.error ? el("div", { class: "muted small failure", title: study.error, text: study.error }) : null,
      ),
      el("td", { class: `num ${studyRiskClass(p, study.suspicion)}`, text: probability(p) }),
      el("td", {}, study.suspicion ? el("span", { class: `chip suspicion-${study.suspicion}`, text: study.suspicion }) : "—"),
      el("td", {}, remove),
    );
    row.addEventListener("click", (event) => {
      if (!event.target.closest("a, button")) window.location.hash = href;
    });
    return row;
  }

  async remove(uid) {
    if (!window.confirm(`Delete study ${uid} and its results?`)) return;
    try {
      await request(routes.study(uid), { method: "DELETE" });
      toast("Study deleted.");
    } catch (error) {
      toast(`Not deleted: ${error.message}`, { error: true });
    }
    this.refresh();
  }
}
