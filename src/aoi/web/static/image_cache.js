// Loads images once per URL (the review queue draws several crops from the same board image).

import { t } from "./i18n.js";

const MAX_ENTRIES = 48;
const cache = new Map();

export function loadImage(url) {
  if (cache.has(url)) {
    const hit = cache.get(url);
    cache.delete(url);
    cache.set(url, hit); // most recently used last
    return hit;
  }
  const promise = new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => {
      cache.delete(url);
      reject(new Error(t("error.image", { url })));
    };
    image.src = url;
  });
  cache.set(url, promise);
  while (cache.size > MAX_ENTRIES) cache.delete(cache.keys().next().value);
  return promise;
}
