/**
 * What the card and its editor say and how: UI strings by language, risk levels, local times,
 * lists and error messages as text. Everything here returns strings; nothing touches the DOM.
 */

const LEVELS = ["low", "medium", "high", "critical"];

/**
 * UI strings by language. Add a language by adding a key; missing keys fall back to English,
 * so partial translations are safe.
 */
const STRINGS = {
  en: {
    title: "Security",
    noCameras: "No cameras found",
    noDetection: "No detection yet",
    noEvents: "No events yet",
    learnedToday: (count) =>
      `${count} learned false alarm${count === 1 ? "" : "s"} kept out today`,
    loading: "Loading…",
    score: "Score",
    close: "Close",
    objects: "Objects",
    zones: "Zones",
    reasoning: "Reasoning",
    observations: "What the AI saw",
    unverified: "Not confirmed by the detector",
    concerns: "Also worth a look",
    contradiction: "Checked against the detections",
    confidence: "AI confidence",
    judgedFrom: "judged from {count} picture(s)",
    judgedFromText: "judged from the detections (no pictures)",
    heuristic: "scored by the rules (no AI verdict)",
    prompt: "prompt",
    calibrated: "Adjusted by your reviews",
    aiSaid: "the AI said",
    rulesSaid: "the rules said",
    review: {
      title: "Your review",
      right: "Looks right",
      false_alarm: "False alarm",
      missed: "Missed / too low",
      note: "Note (optional)",
      saved: "Saved",
      cleared: "Review taken back",
      failed: "Not saved",
    },
    error: "Error",
    latestAlt: "Latest detection",
    eventAlt: "Event image",
    levels: {
      low: "Low",
      medium: "Medium",
      high: "High",
      critical: "Critical",
      clear: "Clear",
      unavailable: "Unavailable",
    },
    editor: {
      title: "Title",
      hub: "Hub (all hubs when empty)",
      events: "Events per camera (1–50)",
      cameras: "Cameras (none checked = all cameras)",
      loadingCameras: "Loading cameras…",
      unreviewedFirst: "Events still to review first",
    },
  },
};

/**
 * Strings for the user's language (`hass.locale.language`, e.g. "de" or "pt-BR"), merged
 * over English so that a missing key never renders as `undefined`.
 * @param {object|undefined} hass
 */
export function strings(hass) {
  const lang = String(hass?.locale?.language || hass?.language || "en");
  const picked = STRINGS[lang] || STRINGS[lang.split("-")[0]] || {};
  const en = STRINGS.en;
  return {
    ...en,
    ...picked,
    levels: { ...en.levels, ...(picked.levels || {}) },
    editor: { ...en.editor, ...(picked.editor || {}) },
    review: { ...en.review, ...(picked.review || {}) },
  };
}

/**
 * Map a sensor state or event level to one of the styled levels. `unknown`, `unavailable` and
 * a missing entity all become "unavailable" so the badge always has a defined colour.
 * @param {string|undefined} value
 */
export function normalizeLevel(value) {
  const level = String(value ?? "").toLowerCase();
  if (LEVELS.includes(level) || level === "clear") return level;
  return "unavailable";
}

/** Readable message from an Error, an HA websocket error `{code, message}`, or anything else. */
export function errorMessage(err) {
  if (err && typeof err === "object") return String(err.message || err.code || err);
  return String(err);
}

const formatters = new Map();

/**
 * Local date/time of an ISO timestamp in the user's language; honours HA's "server time zone"
 * profile setting. Formatters are cached because timelines format many rows per update.
 * @param {string} iso
 * @param {object|undefined} hass
 */
export function formatTime(iso, hass) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso ?? "");
  const lang = hass?.locale?.language || undefined;
  const timeZone =
    hass?.locale?.time_zone === "server" && hass?.config?.time_zone
      ? hass.config.time_zone
      : undefined;
  const key = `${lang}|${timeZone}`;
  let fmt = formatters.get(key);
  if (!fmt) {
    try {
      fmt = new Intl.DateTimeFormat(lang, { dateStyle: "short", timeStyle: "short", timeZone });
    } catch {
      // Unknown language tag or time zone: the browser's defaults are still readable.
      fmt = new Intl.DateTimeFormat(undefined, { dateStyle: "short", timeStyle: "short" });
    }
    formatters.set(key, fmt);
  }
  return fmt.format(date);
}

/** Comma-separated list of strings from an array that may contain non-strings or be missing. */
export function joinList(value) {
  return Array.isArray(value) ? value.map((item) => String(item)).join(", ") : "";
}
