/**
 * AI Security Lovelace card (`type: custom:ai-security-card`) and its visual editor.
 *
 * Plain ES modules, no build step and no dependencies: the integration serves this folder as
 * static assets and registers this file, the entry, with `frontend.add_extra_js_url`; it
 * imports the others by relative URL, so they load from the same versioned folder. All must run
 * as-is in every browser the HA frontend supports. The modules: card.js (the card's element),
 * timeline.js (its event timelines), dialog.js (its event dialog), editor.js (the visual
 * editor), config.js (options, limits, the camera list), format.js (strings, levels, times),
 * dom.js (elements and URLs from backend data), styles.js (the style sheets).
 *
 * Backend contract these modules are written against:
 * - `hass.callWS({type: "ai_security/cameras"})` -> `{cameras: [{config_entry_id, hub_name,
 *   camera_id, name, device_id, entities: {latest_detection, risk_level, risk_score,
 *   last_event, activity}}]}` (entity ids or null).
 * - `hass.callWS({type: "ai_security/search_events", config_entry_id, cameras: [camera_id],
 *   page_size})` -> `{total, page, page_size, events: [...]}`, the `search_events` action's
 *   answer, read without calling the action: reads are not audited, and a card polling every
 *   minute must not fill the audit trail. Each event carries `event_id`, `started_at` (ISO
 *   UTC), `risk_level`, `risk_score`, `summary`, `reasoning`, `object_types`, `zones`, and
 *   signed relative `image_url` / `clip_url` that expire, which is why events are re-fetched
 *   periodically rather than cached.
 * - Live state from `hass.states`: the `latest_detection` camera's `entity_picture` (falling
 *   back to the `last_event` image entity's), and the `risk_level` / `risk_score` sensors.
 *
 * Security rule: every string that comes from the backend (names, summaries, reasoning, object
 * types, zones) is written with `textContent`; `innerHTML` is only used for static markup.
 */

import { AiSecurityCard } from "./card.js";
import { CARD_TYPE } from "./config.js";
import { AiSecurityCardEditor } from "./editor.js";

/**
 * Define the card and its editor in the page's current custom element registry, unless there.
 *
 * Called twice, because this module races Home Assistant's app on every fresh page load: the
 * frontend imports extra modules beside its own `core` and `app` bundles, all at once, and
 * whichever file arrives first runs first. The app starts by installing the scoped custom
 * element registry polyfill, which puts a new, empty registry in `window.customElements`. A
 * definition made before that lands in the browser's own registry, which the new one does not
 * consult: Lovelace's `customElements.get` then finds no card and its `whenDefined` never
 * resolves, so the dashboard showed "Configuration error" for good (about every second fresh
 * load). The app defines `home-assistant` through the new registry, which passes definitions
 * on to the browser's own; so waiting for it on the registry seen now also works when the
 * swap is still to come, and the second call defines the card in the registry the app uses.
 */
function defineElements() {
  const registry = window.customElements;
  // Literal names (not the constants) so the served file can be recognised by a plain search.
  if (!registry.get("ai-security-card")) {
    registry.define("ai-security-card", AiSecurityCard);
  }
  if (!registry.get("ai-security-card-editor")) {
    registry.define("ai-security-card-editor", AiSecurityCardEditor);
  }
}

defineElements();
window.customElements.whenDefined("home-assistant").then(defineElements);

window.customCards = window.customCards || [];
if (!window.customCards.some((card) => card.type === CARD_TYPE)) {
  window.customCards.push({
    type: CARD_TYPE,
    name: "AI Security",
    description: "Per-camera risk level, latest annotated detection and recent events.",
    preview: false,
    documentationURL: "https://github.com/ai-security-ha/ai_security",
  });
}
