// Drag-and-drop and file-picker upload: bytes sent with a progress bar, then the analysis
// job followed until it is done, with a link to the study.

import { request, routes, uploadFiles } from "./api.js";
import { el, toast } from "./format.js";

const JOB_POLL_MS = 1000;
// the service's job stages in order (mammocad.jobs.stages.default_stages)
const STAGES = ["decode", "analyze", "report"];

/** The job id of an upload answer: the body's job id, else the tail of a /jobs/ Location. */
export function jobIdOf(body, location) {
  const candidates = [body?.job_id, body?.job?.id];
  for (const value of candidates) if (typeof value === "string" && value) return value;
  const match = /\/jobs\/([^/?#]+)/.exec(location || body?.location || "");
  return match ? decodeURIComponent(match[1]) : null;
}

export class Uploader {
  constructor({ onChange }) {
    this.zone = document.getElementById("dropzone");
    this.input = document.getElementById("file-input");
    this.list = document.getElementById("upload-list");
    this.onChange = onChange;
    this.bind();
  }

  bind() {
    this.input.addEventListener("change", () => {
      if (this.input.files.length) this.send([...this.input.files]);
      this.input.value = "";
    });
    for (const name of ["dragenter", "dragover"]) {
      this.zone.addEventListener(name, (event) => {
        event.preventDefault();
        event.dataTransfer.dropEffect = "copy";
        this.zone.classList.add("over");
      });
    }
    this.zone.addEventListener("dragleave", (event) => {
      if (!this.zone.contains(event.relatedTarget)) this.zone.classList.remove("over");
    });
    this.zone.addEventListener("drop", (event) => {
      event.preventDefault();
      this.zone.classList.remove("over");
      const files = [...(event.dataTransfer?.files || [])];
      if (files.length) this.send(files);
    });
    this.zone.addEventListener("keydown", (event) => {
      if (event.target === this.zone && (event.key === "Enter" || event.key === " ")) {
        event.preventDefault();
        this.input.click();
      }
    });
  }

  async send(files) {
    const bytes = files.reduce((sum, file) => sum + file.size, 0);
    const bar = el("progress", { max: 1, value: 0, "aria-label": "upload progress" });
    const text = el("span", { class: "upload-text", text: "uploading…" });
    const title = `${files.length} file${files.length > 1 ? "s" : ""} (${(bytes / 1048576).toFixed(1)} MB)`;
    const item = el("li", { class: "upload-item", dataset: { state: "uploading" } },
      el("strong", { text: title }), bar, text);
    this.list.prepend(item);
    let answer;
    try {
      answer = await uploadFiles(files, {
        onProgress: (fraction) => {
          bar.value = fraction;
          text.textContent = `uploading ${Math.round(fraction * 100)} %`;
        },
      });
    } catch (error) {
      item.dataset.state = "failed";
      text.textContent = `upload failed: ${error.message}`;
      toast(`Upload failed: ${error.message}`, { error: true });
      return;
    }
    bar.value = 1;
    this.onChange();
    const body = answer.body || {};
    const uid = body.study_instance_uid;
    if (body.ignored?.length) {
      const reasons = body.ignored.map((file) => `${file.name}: ${file.reason}`).join("; ");
      item.append(el("div", { class: "muted small", text: `ignored ${reasons}` }));
    }
    // 200 instead of 202: every instance was known, the answer is the study's latest job
    if (answer.status === 200) item.dataset.nothingNew = "true";
    if (uid) {
      item.append(" ", el("a", { href: `#/studies/${encodeURIComponent(uid)}`, class: "study-link", text: "open study" }));
    }
    const jobId = jobIdOf(body, answer.location);
    if (!jobId) {
      item.dataset.state = "done";
      text.textContent = "uploaded";
      return;
    }
    item.dataset.state = "queued";
    item.dataset.job = jobId;
    await this.follow(jobId, item, bar, text);
  }

  async follow(jobId, item, bar, text) {
    bar.removeAttribute("value"); // indeterminate until a stage is known
    for (;;) {
      let job;
      try {
        job = await request(routes.job(jobId));
      } catch (error) {
        if (error.status === 404) {
          item.dataset.state = "failed";
          text.textContent = "the job is gone: its study was deleted";
          return;
        }
        text.textContent = `analysis status unknown: ${error.message}`;
        await new Promise((resolve) => setTimeout(resolve, JOB_POLL_MS * 3));
        continue;
      }
      const status = job.status || "unknown";
      item.dataset.state = status;
      if (status === "done") {
        bar.value = 1;
        text.textContent = item.dataset.nothingNew
          ? "nothing new in this upload: the study was analysed already"
          : "analysis done";
        this.onChange();
        return;
      }
      if (status === "failed") {
        bar.value = 0;
        text.textContent = `analysis failed: ${job.error || "see the service log"}`;
        this.onChange();
        return;
      }
      const step = STAGES.indexOf(job.stage);
      if (status === "running" && step >= 0) {
        bar.value = step / STAGES.length;
        text.textContent = `analysis running: ${job.stage} (${step + 1}/${STAGES.length})…`;
      } else {
        bar.removeAttribute("value");
        text.textContent = `analysis ${status}${job.stage ? `: ${job.stage}` : ""}…`;
      }
      await new Promise((resolve) => setTimeout(resolve, JOB_POLL_MS));
    }
  }
}
