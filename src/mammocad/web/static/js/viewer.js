// One slot of the hanging: the picture on a canvas (window/level applied to its pixels), the
// findings as SVG boxes on top, zoom (wheel), pan (drag), window/level (right-drag).

import { fetchBitmap } from "./api.js";
import { boxToScreen, fitView, hasPicture, toScreen, zoomAbout } from "./hanging.js";
import { el, labelText, probability, riskClass, svg } from "./format.js";

// Larger pictures are reduced once on load: window/level then touches at most ~4 Mpixel.
const MAX_WORKING_SIDE = 2048;

const LABEL_HEIGHT = 14; // px of one label line (the finding text's font, with a little air)

/**
 * Where a box's label goes: above the box, else below it, else inside its top, else stacked
 * further above — the first spot whose line overlaps no label placed before (clustered boxes
 * wrote their labels over each other, unreadable). `x`/`length`: the label's left and width.
 */
function labelSpot(x, length, box, placed) {
  const above = box.y > LABEL_HEIGHT + 2 ? [box.y - 4] : [];
  const stacked = [1, 2, 3, 4].map((k) => box.y - 4 - k * LABEL_HEIGHT).filter((y) => y > LABEL_HEIGHT);
  const baselines = [...above, box.y + box.height + LABEL_HEIGHT, box.y + LABEL_HEIGHT - 2, ...stacked];
  const free = (baseline) =>
    placed.every(
      (other) =>
        x + length <= other.x ||
        other.x + other.length <= x ||
        baseline <= other.baseline - LABEL_HEIGHT ||
        other.baseline <= baseline - LABEL_HEIGHT,
    );
  const baseline = baselines.find(free) ?? baselines[0];
  return { x, length, baseline };
}

export class SlotView {
  /**
   * slot: {id, laterality}; image: result image or null; pictureUrls: its picture, best first;
   * candidates: the breasts' x_leading_candidate boxes on this image (not reported, drawn
   * dashed); hooks: {adjustWindow(dx, dy), hover(findingId, on), select(findingId)}.
   */
  constructor({ slot, image, pictureUrls, candidates, hooks }) {
    this.slot = slot;
    this.image = image;
    this.candidates = candidates || [];
    this.pictureUrls = pictureUrls || [];
    this.hooks = hooks;
    this.view = null;
    this.userMoved = false;
    this.grey = null; // Uint8Array of the working picture, one byte a pixel
    this.working = null; // canvas holding the windowed working picture
    this.boxes = new Map(); // finding id → {group, rect, text, finding}
    this.build();
  }

  build() {
    const image = this.image;
    const title = image ? `${this.slot.id} (${image.view || "?"})` : `${this.slot.id}: no image`;
    this.canvas = el("canvas", { class: "slot-canvas", "aria-hidden": "true" });
    this.overlay = svg("svg", { class: "slot-overlay", role: "group" });
    this.overlay.setAttribute("aria-label", `Findings on ${this.slot.id}`);
    this.stage = el("div", { class: "stage" }, this.canvas, this.overlay);
    this.status = el("div", { class: "slot-status" });
    this.quality = el("ul", { class: "slot-quality" });
    this.element = el(
      "figure",
      {
        class: `slot slot-${this.slot.laterality}`,
        dataset: { slot: this.slot.id, sop: image ? image.sop_instance_uid : "" },
        "aria-label": title,
      },
      el(
        "figcaption",
        { class: "slot-label" },
        el("strong", { text: this.slot.id }),
        image && image.view && image.view !== this.slot.id.slice(1) ? ` (${image.view})` : "",
      ),
      this.stage,
      this.status,
      this.quality,
    );
    this.fillQuality();
    this.bindPointer();
    this.resizer = new ResizeObserver(() => this.render());
    this.resizer.observe(this.stage);
  }

  fillQuality() {
    const image = this.image;
    if (!image) {
      this.element.classList.add("empty");
      this.status.textContent = "No image for this view";
      return;
    }
    if (image.status === "rejected") {
      this.element.classList.add("rejected");
      this.status.textContent = `Rejected: ${image.rejection_code || "unreadable"}`;
    }
    const quality = image.quality || { issues: [] };
    if (quality.acceptable === false && hasPicture(this.image)) {
      this.element.classList.add("poor-quality");
    }
    if (typeof quality.score === "number") {
      this.quality.append(
        el("li", { class: quality.acceptable === false ? "warning" : "info" },
          `Quality ${probability(quality.score)}${quality.acceptable === false ? " — not acceptable" : ""}`),
      );
    }
    for (const issue of quality.issues || []) {
      this.quality.append(el("li", { class: issue.severity || "info", text: issue.text }));
    }
  }

  /** Fetch the picture: the clean one, else the overlay (findings burned in, said so). */
  async load() {
    if (!hasPicture(this.image)) return;
    const verdict = this.status.textContent; // "Rejected: …" stays over a refused image
    this.status.textContent = "Loading…";
    let failure = "no picture";
    for (const [index, url] of this.pictureUrls.entries()) {
      try {
        this.takePicture(await fetchBitmap(url));
        this.status.textContent = verdict;
        this.element.classList.add("loaded");
        if (index > 0 && this.image.status === "processed") {
          this.quality.prepend(el("li", { class: "warning", text: "Findings are burned into this picture" }));
        }
        break;
      } catch (error) {
        failure = error.message;
      }
    }
    if (!this.grey) this.status.textContent = `Picture unavailable: ${failure}`;
    this.drawFindings();
    this.render();
  }

  takePicture(bitmap) {
    const factor = Math.min(1, MAX_WORKING_SIDE / Math.max(bitmap.width, bitmap.height));
    const width = Math.max(1, Math.round(bitmap.width * factor));
    const height = Math.max(1, Math.round(bitmap.height * factor));
    const scratch = document.createElement("canvas");
    scratch.width = width;
    scratch.height = height;
    const context = scratch.getContext("2d", { willReadFrequently: true });
    context.drawImage(bitmap, 0, 0, width, height);
    const rgba = context.getImageData(0, 0, width, height).data;
    this.grey = new Uint8Array(width * height);
    for (let i = 0, j = 0; i < this.grey.length; i += 1, j += 4) this.grey[i] = rgba[j];
    this.working = scratch;
    this.workingContext = context;
    this.pixels = context.createImageData(width, height);
    if (bitmap.close) bitmap.close();
  }

  /** Re-map the grey picture through the window look-up table (0..255 → 0..255). */
  applyWindow(lut) {
    if (!this.grey) return;
    const out = this.pixels.data;
    const grey = this.grey;
    for (let i = 0, j = 0; i < grey.length; i += 1, j += 4) {
      const v = lut[grey[i]];
      out[j] = v;
      out[j + 1] = v;
      out[j + 2] = v;
      out[j + 3] = 255;
    }
    this.workingContext.putImageData(this.pixels, 0, 0);
    this.render();
  }

  drawFindings() {
    this.overlay.replaceChildren();
    this.boxes.clear();
    if (!this.image) return;
    const findings = (this.image.findings || []).map((finding) => ({ finding, candidate: false }));
    const candidates = this.candidates.map((finding) => ({ finding, candidate: true }));
    for (const { finding, candidate } of [...findings, ...candidates]) {
      const rect = svg("rect", { class: "finding-box" });
      const text = svg("text", { class: "finding-text" });
      text.textContent =
        `${candidate ? "candidate: " : ""}${labelText(finding.label)} ` +
        `${probability(finding.malignancy_probability)}`;
      const title = svg("title");
      title.textContent =
        `${labelText(finding.label)}: malignancy ${probability(finding.malignancy_probability)},` +
        ` detector score ${probability(finding.score)}` +
        (candidate ? " — not reported; drives this breast's probability" : "");
      const group = svg("g", {
        class: `finding ${candidate ? "candidate" : riskClass(finding.malignancy_probability)}`,
        dataset: { findingId: finding.id },
        tabindex: 0,
      });
      group.append(title, rect, text);
      group.addEventListener("mouseenter", () => this.hooks.hover(finding.id, true));
      group.addEventListener("mouseleave", () => this.hooks.hover(finding.id, false));
      group.addEventListener("focus", () => this.hooks.hover(finding.id, true));
      group.addEventListener("blur", () => this.hooks.hover(finding.id, false));
      group.addEventListener("click", () => this.hooks.select(finding.id));
      this.overlay.append(group);
      this.boxes.set(finding.id, { group, rect, text, finding });
    }
    if (Array.isArray(this.image.nipple)) {
      this.nipple = svg("circle", { class: "nipple", r: 5 });
      const title = svg("title");
      title.textContent = "nipple";
      this.nipple.append(title);
      this.overlay.append(this.nipple);
    }
  }

  highlight(findingId, on) {
    const entry = this.boxes.get(findingId);
    if (entry) entry.group.classList.toggle("active", on);
  }

  size() {
    return { width: this.stage.clientWidth, height: this.stage.clientHeight };
  }

  reset() {
    this.userMoved = false;
    this.view = null;
    this.render();
  }

  zoom(factor, px, py) {
    if (!this.view) return;
    const { width, height } = this.size();
    this.view = zoomAbout(this.view, factor, px ?? width / 2, py ?? height / 2);
    this.userMoved = true;
    this.render();
  }

  render() {
    if (!hasPicture(this.image)) return;
    const { width, height } = this.size();
    if (width < 2 || height < 2) return;
    if (!this.view || !this.userMoved) this.view = fitView(this.image, width, height);
    const ratio = window.devicePixelRatio || 1;
    if (this.canvas.width !== Math.round(width * ratio)) this.canvas.width = Math.round(width * ratio);
    if (this.canvas.height !== Math.round(height * ratio)) {
      this.canvas.height = Math.round(height * ratio);
    }
    const context = this.canvas.getContext("2d");
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    context.fillStyle = "#000";
    context.fillRect(0, 0, width, height);
    if (this.working) {
      const { scale, tx, ty, mirror } = this.view;
      context.save();
      context.translate(tx, ty);
      context.scale(scale, scale);
      if (mirror) {
        context.translate(this.image.columns, 0);
        context.scale(-1, 1);
      }
      context.imageSmoothingQuality = "high";
      context.drawImage(this.working, 0, 0, this.image.columns, this.image.rows);
      context.restore();
    }
    this.overlay.setAttribute("width", width);
    this.overlay.setAttribute("height", height);
    this.placeFindings();
  }

  placeFindings() {
    const room = this.overlay.width.baseVal.value;
    const placed = [];
    // the most suspicious first, so it keeps the spot above its box when labels crowd
    const entries = [...this.boxes.values()].sort(
      (a, b) => (b.finding.malignancy_probability ?? 0) - (a.finding.malignancy_probability ?? 0),
    );
    for (const { rect, text, finding } of entries) {
      const box = boxToScreen(this.view, this.image, finding.box);
      rect.setAttribute("x", box.x);
      rect.setAttribute("y", box.y);
      rect.setAttribute("width", Math.max(1, box.width));
      rect.setAttribute("height", Math.max(1, box.height));
      // a box against the slot's right edge (a right breast's chest wall) would have its
      // probability cut off: end the label at the box's right side instead
      const length = text.getComputedTextLength();
      const x = box.x + length > room ? Math.max(0, box.x + box.width - length) : box.x;
      const spot = labelSpot(x, length, box, placed);
      text.setAttribute("x", x);
      text.setAttribute("y", spot.baseline);
      placed.push(spot);
    }
    if (this.nipple) {
      const [x, y] = toScreen(this.view, this.image, this.image.nipple[0], this.image.nipple[1]);
      this.nipple.setAttribute("cx", x);
      this.nipple.setAttribute("cy", y);
    }
  }

  bindPointer() {
    let drag = null;
    this.stage.addEventListener("contextmenu", (event) => event.preventDefault());
    this.stage.addEventListener("pointerdown", (event) => {
      if (!this.view) return;
      const mode = event.button === 2 ? "window" : "pan";
      drag = { mode, x: event.clientX, y: event.clientY, moved: false };
    });
    this.stage.addEventListener("pointermove", (event) => {
      if (!drag) return;
      const dx = event.clientX - drag.x;
      const dy = event.clientY - drag.y;
      if (!drag.moved) {
        // capture only once it is a drag, so a click still reaches the box under the pointer
        if (Math.abs(dx) + Math.abs(dy) < 3) return;
        drag.moved = true;
        this.stage.setPointerCapture(event.pointerId);
        this.stage.classList.add(drag.mode === "pan" ? "panning" : "windowing");
      }
      drag.x = event.clientX;
      drag.y = event.clientY;
      if (drag.mode === "window") {
        this.hooks.adjustWindow(dx, dy);
        return;
      }
      this.view = { ...this.view, tx: this.view.tx + dx, ty: this.view.ty + dy };
      this.userMoved = true;
      this.render();
    });
    const end = (event) => {
      if (!drag) return;
      this.stage.classList.remove("panning", "windowing");
      drag = null;
      if (this.stage.hasPointerCapture(event.pointerId)) {
        this.stage.releasePointerCapture(event.pointerId);
      }
    };
    this.stage.addEventListener("pointerup", end);
    this.stage.addEventListener("pointercancel", end);
    this.stage.addEventListener(
      "wheel",
      (event) => {
        if (!this.view) return;
        event.preventDefault();
        const bounds = this.stage.getBoundingClientRect();
        const factor = Math.exp(-event.deltaY * 0.0015);
        this.zoom(factor, event.clientX - bounds.left, event.clientY - bounds.top);
      },
      { passive: false },
    );
    this.stage.addEventListener("dblclick", () => this.reset());
  }

  destroy() {
    this.resizer.disconnect();
  }
}
