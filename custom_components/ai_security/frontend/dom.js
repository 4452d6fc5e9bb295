/**
 * The two ways backend data reaches the DOM: as text (`el`) and as a media URL (`safeUrl`).
 * Kept together because they carry the card's security rule: every string from the backend is
 * written with `textContent`, and only same-origin or http(s) URLs become a `src`.
 */

/**
 * Accept only same-origin paths and http(s) URLs for media, so a malformed backend value can
 * never become a `javascript:` or `data:` URL in a `src` attribute.
 * @param {unknown} url
 * @returns {string|null}
 */
export function safeUrl(url) {
  if (typeof url !== "string" || url === "") return null;
  if (url.startsWith("/") && !url.startsWith("//")) return url;
  try {
    const parsed = new URL(url);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? url : null;
  } catch {
    return null;
  }
}

/** Append a query parameter to a URL that may or may not already have a query string. */
export function withParam(url, name, value) {
  return `${url}${url.includes("?") ? "&" : "?"}${name}=${encodeURIComponent(value)}`;
}

/** Create an element with an optional class and text (always via textContent). */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}
