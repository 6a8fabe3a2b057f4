// Loads the API's images with the API key (an <img src> cannot send one): each URL is fetched once as a
// Blob and kept (the review queue draws several crops from the same board image); every <img> or Image
// gets its own object URL, released as soon as the picture is decoded.

import { fetchImage } from "./api.js";
import { t } from "./i18n.js";

const MAX_ENTRIES = 48;
const cache = new Map(); // url -> Promise<Blob>, most recently used last

function imageBlob(url) {
  if (cache.has(url)) {
    const hit = cache.get(url);
    cache.delete(url);
    cache.set(url, hit);
    return hit;
  }
  const promise = fetchImage(url);
  promise.catch(() => cache.delete(url)); // a refusal is not kept: the next try may have a key
  cache.set(url, promise);
  while (cache.size > MAX_ENTRIES) cache.delete(cache.keys().next().value);
  return promise;
}

// Forgets every image (the key changed: what it could read is not what the next one can).
export function clearImages() {
  cache.clear();
}

// Shows the image at `url` in `image` (an <img> or a new Image()); resolves with it once decoded, rejects
// with the ApiError of a refused fetch. A later call on the same element wins over an earlier one still
// loading, so a slow answer never replaces a newer picture.
export async function showImage(image, url) {
  image.dataset.want = url;
  const blob = await imageBlob(url);
  if (image.dataset.want !== url) return image;
  const objectUrl = URL.createObjectURL(blob);
  try {
    await new Promise((resolve, reject) => {
      image.onload = resolve;
      image.onerror = () => reject(new Error(t("error.image", { url })));
      image.src = objectUrl;
    });
  } finally {
    image.onload = null;
    image.onerror = null;
    URL.revokeObjectURL(objectUrl);
  }
  return image;
}

// A decoded Image of `url`, for drawing onto a canvas.
export function loadImage(url) {
  return showImage(new Image(), url);
}
