/**
 * The card's options and limits, the validation of its YAML, and the camera list it reads.
 *
 * Shared by the card and its editor, so that both accept the same options and ranges.
 */

export const CARD_TYPE = "ai-security-card";
export const EDITOR_TYPE = "ai-security-card-editor";
export const DEFAULT_EVENTS = 5;
export const MAX_EVENTS = 50;
/** Minimum spacing of event fetches per camera; state bursts collapse into one fetch. */
export const MIN_FETCH_INTERVAL_MS = 2000;
/** Short settle delay so the several entities updated for one event trigger a single fetch. */
export const SETTLE_MS = 300;
/** Periodic refresh: signed media URLs expire, and events may change without state changes. */
export const PERIODIC_REFRESH_MS = 60000;

/**
 * Validate a card config and return a normalized copy. Thrown messages are shown by HA in
 * the card's error box, so they name the option and the accepted values.
 * @param {object} config
 */
export function normalizeConfig(config) {
  if (!config || typeof config !== "object" || Array.isArray(config)) {
    throw new Error("Invalid configuration: expected an object");
  }
  const out = { ...config };
  if (out.title !== undefined && typeof out.title !== "string") {
    throw new Error("'title' must be a string");
  }
  if (out.events === undefined || out.events === null) {
    out.events = DEFAULT_EVENTS;
  } else {
    const events = Number(out.events);
    if (!Number.isInteger(events) || events < 1 || events > MAX_EVENTS) {
      throw new Error(`'events' must be a whole number from 1 to ${MAX_EVENTS}`);
    }
    out.events = events;
  }
  if (out.cameras !== undefined) {
    if (!Array.isArray(out.cameras) || !out.cameras.every((c) => typeof c === "string" && c)) {
      throw new Error("'cameras' must be a list of camera ids (strings)");
    }
  }
  if (out.unreviewed_first !== undefined && typeof out.unreviewed_first !== "boolean") {
    throw new Error("'unreviewed_first' must be true or false");
  }
  if (out.config_entry_id !== undefined && typeof out.config_entry_id !== "string") {
    throw new Error("'config_entry_id' must be a string");
  }
  return out;
}

/** Fetch the camera list; throws on a malformed reply so callers show one error path. */
export async function fetchCameras(hass) {
  const result = await hass.callWS({ type: "ai_security/cameras" });
  if (!result || !Array.isArray(result.cameras)) {
    throw new Error("Unexpected reply to ai_security/cameras");
  }
  return result.cameras.filter((cam) => cam && typeof cam.camera_id === "string");
}
