// The standard screening hanging and the geometry of one image in its slot.
//
// Right breast on the left of the screen, left breast on the right, CC on top, MLO below,
// mirrored where needed so the two chest walls meet in the middle ("back to back").
// Every coordinate of the result is in ORIGINAL stored pixels of its image; the view maps
// original → screen with (mirror, scale, tx, ty) and nothing else.

export const SLOTS = [
  { id: "RCC", laterality: "R", views: ["CC", "XCCL", "XCCM"] },
  { id: "LCC", laterality: "L", views: ["CC", "XCCL", "XCCM"] },
  { id: "RMLO", laterality: "R", views: ["MLO", "ML", "LM"] },
  { id: "LMLO", laterality: "L", views: ["MLO", "ML", "LM"] },
];

/**
 * Which image hangs in which slot: {slotId: image|null} and the images left over.
 * A processed image of the exact view beats an alternative view beats a rejected one; of
 * rejected ones, a view the quality gate refused (it has a picture) beats an unreadable one.
 */
export function assignSlots(images) {
  const slots = {};
  const used = new Set();
  for (const slot of SLOTS) {
    let best = null;
    let bestRank = Infinity;
    for (const image of images) {
      if (used.has(image) || image.laterality !== slot.laterality) continue;
      const viewRank = slot.views.indexOf(image.view);
      if (viewRank < 0) continue;
      const rank = viewRank + statusRank(image);
      if (rank < bestRank) {
        best = image;
        bestRank = rank;
      }
    }
    slots[slot.id] = best;
    if (best) used.add(best);
  }
  return { slots, others: images.filter((image) => !used.has(image)) };
}

/** Processed images, and those the quality gate refused: shown, so the reader sees why. */
export function hasPicture(image) {
  return Boolean(image) && (image.status === "processed" || image.rejection_code === "unacceptable_quality");
}

function statusRank(image) {
  if (image.status === "processed") return 0;
  return hasPicture(image) ? 10 : 20;
}

/**
 * Mirror the stored picture? `flipped` says the pipeline mirrored it to put the chest wall on
 * the left, i.e. the stored chest wall is on the right. Back to back wants the right breast's
 * chest wall on the right (screen centre) and the left breast's on the left.
 */
export function mirrorFor(image) {
  const chestWallRight = image.flipped === true;
  return image.laterality === "R" ? !chestWallRight : chestWallRight;
}

/** The fitted view of an image in a slot of width×height: chest wall against the centre. */
export function fitView(image, width, height) {
  const scale = Math.min(width / image.columns, height / image.rows);
  const shown = image.columns * scale;
  return {
    mirror: mirrorFor(image),
    scale,
    tx: image.laterality === "R" ? width - shown : 0,
    ty: (height - image.rows * scale) / 2,
  };
}

/** Original pixel (x, y) → slot pixel. */
export function toScreen(view, image, x, y) {
  const xm = view.mirror ? image.columns - x : x;
  return [view.tx + xm * view.scale, view.ty + y * view.scale];
}

/** Original box [x1, y1, x2, y2] → slot rectangle {x, y, width, height}. */
export function boxToScreen(view, image, box) {
  const [ax, ay] = toScreen(view, image, box[0], box[1]);
  const [bx, by] = toScreen(view, image, box[2], box[3]);
  return {
    x: Math.min(ax, bx),
    y: Math.min(ay, by),
    width: Math.abs(bx - ax),
    height: Math.abs(by - ay),
  };
}

/** Zoom by factor about the slot point (px, py), which stays where it is. */
export function zoomAbout(view, factor, px, py, { min = 0.05, max = 40 } = {}) {
  const scale = Math.min(max, Math.max(min, view.scale * factor));
  const applied = scale / view.scale;
  return {
    ...view,
    scale,
    tx: px - (px - view.tx) * applied,
    ty: py - (py - view.ty) * applied,
  };
}

/** Grey-level look-up table for window width/centre on 8-bit pictures (0..255 in and out). */
export function windowLut(width, centre, invert = false) {
  const lut = new Uint8ClampedArray(256);
  const w = Math.max(1, width);
  const low = centre - w / 2;
  for (let v = 0; v < 256; v += 1) {
    const out = ((v - low) / w) * 255;
    lut[v] = invert ? 255 - out : out;
  }
  return lut;
}
