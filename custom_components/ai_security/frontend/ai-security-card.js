/**
 * AI Security Lovelace card (`type: custom:ai-security-card`) and its visual editor.
 *
 * Plain ES module, no build step and no dependencies: the integration serves this file as a
 * static asset and registers it with `frontend.add_extra_js_url`, so it must run as-is in
 * every browser the HA frontend supports.
 *
 * Backend contract this file is written against:
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

const CARD_TYPE = "ai-security-card";
const EDITOR_TYPE = "ai-security-card-editor";
const DEFAULT_EVENTS = 5;
const MAX_EVENTS = 50;
/** Minimum spacing of event fetches per camera; state bursts collapse into one fetch. */
const MIN_FETCH_INTERVAL_MS = 2000;
/** Short settle delay so the several entities updated for one event trigger a single fetch. */
const SETTLE_MS = 300;
/** Periodic refresh: signed media URLs expire, and events may change without state changes. */
const PERIODIC_REFRESH_MS = 60000;

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
    loading: "Loading…",
    score: "Score",
    close: "Close",
    objects: "Objects",
    zones: "Zones",
    reasoning: "Reasoning",
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
      events: "Events per camera (1–50)",
      cameras: "Cameras (none checked = all cameras)",
      loadingCameras: "Loading cameras…",
    },
  },
};

/**
 * Strings for the user's language (`hass.locale.language`, e.g. "de" or "pt-BR"), merged
 * over English so that a missing key never renders as `undefined`.
 * @param {object|undefined} hass
 */
function strings(hass) {
  const lang = String(hass?.locale?.language || hass?.language || "en");
  const picked = STRINGS[lang] || STRINGS[lang.split("-")[0]] || {};
  const en = STRINGS.en;
  return {
    ...en,
    ...picked,
    levels: { ...en.levels, ...(picked.levels || {}) },
    editor: { ...en.editor, ...(picked.editor || {}) },
  };
}

/**
 * Map a sensor state or event level to one of the styled levels. `unknown`, `unavailable` and
 * a missing entity all become "unavailable" so the badge always has a defined colour.
 * @param {string|undefined} value
 */
function normalizeLevel(value) {
  const level = String(value ?? "").toLowerCase();
  if (LEVELS.includes(level) || level === "clear") return level;
  return "unavailable";
}

/**
 * Accept only same-origin paths and http(s) URLs for media, so a malformed backend value can
 * never become a `javascript:` or `data:` URL in a `src` attribute.
 * @param {unknown} url
 * @returns {string|null}
 */
function safeUrl(url) {
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
function withParam(url, name, value) {
  return `${url}${url.includes("?") ? "&" : "?"}${name}=${encodeURIComponent(value)}`;
}

/** Readable message from an Error, an HA websocket error `{code, message}`, or anything else. */
function errorMessage(err) {
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
function formatTime(iso, hass) {
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

/** Create an element with an optional class and text (always via textContent). */
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

/**
 * The player of an event's clip, showing the event's annotated key frame (its poster) with it.
 * It does not play by itself: the key frame stays in view until the user presses play, the
 * clip starts at its beginning, and when it ends it goes back to the key frame instead of
 * stopping on its last frame (load() rewinds it and shows the poster again).
 * @param {string} clip
 * @param {string|null} poster
 */
function clipPlayer(clip, poster) {
  const video = el("video", "dialog-clip");
  Object.assign(video, { controls: true, muted: true, playsInline: true, preload: "metadata" });
  for (const attr of ["controls", "muted", "playsinline"]) video.setAttribute(attr, "");
  if (poster) video.poster = poster;
  video.src = clip;
  video.addEventListener("ended", () => video.load());
  return video;
}

/** Comma-separated list of strings from an array that may contain non-strings or be missing. */
function joinList(value) {
  return Array.isArray(value) ? value.map((item) => String(item)).join(", ") : "";
}

/**
 * Validate a card config and return a normalized copy. Thrown messages are shown by HA in
 * the card's error box, so they name the option and the accepted values.
 * @param {object} config
 */
function normalizeConfig(config) {
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
  if (out.config_entry_id !== undefined && typeof out.config_entry_id !== "string") {
    throw new Error("'config_entry_id' must be a string");
  }
  return out;
}

/** Fetch the camera list; throws on a malformed reply so callers show one error path. */
async function fetchCameras(hass) {
  const result = await hass.callWS({ type: "ai_security/cameras" });
  if (!result || !Array.isArray(result.cameras)) {
    throw new Error("Unexpected reply to ai_security/cameras");
  }
  return result.cameras.filter((cam) => cam && typeof cam.camera_id === "string");
}

/**
 * Level colours, only on the badge and the chips: the event rows carry data-level too (for
 * tests and themes), and must keep the card's own background.
 */
const LEVEL_CSS = `
  :is(.risk-badge, .event-level)[data-level="low"] { background: #43A047; color: #000; }
  :is(.risk-badge, .event-level)[data-level="medium"] { background: #FFB800; color: #000; }
  :is(.risk-badge, .event-level)[data-level="high"] { background: #F97316; color: #000; }
  :is(.risk-badge, .event-level)[data-level="critical"] { background: #E74856; color: #000; }
  :is(.risk-badge, .event-level):is([data-level="clear"], [data-level="unavailable"]) {
    background: var(--disabled-text-color, #9e9e9e); color: #000;
  }
`;

const CARD_CSS = `
  :host { display: block; }
  [hidden] { display: none !important; }
  ha-card.ai-security-card {
    display: block;
    background: var(--ha-card-background, var(--card-background-color, #fff));
    color: var(--primary-text-color, #212121);
    border-radius: var(--ha-card-border-radius, 12px);
  }
  .card-header {
    margin: 0; padding: 24px 16px 16px; font-size: 24px; font-weight: 400; line-height: 32px;
  }
  .error, .camera-error { margin: 0 16px 8px; font-size: 13px; color: var(--error-color, #E74856); }
  .camera-error { margin: 8px 0 0; }
  .error:empty, .camera-error:empty, .event-objects:empty { display: none; }
  .empty, .no-image, .no-events, .score, .event-time, .event-objects, .dialog-label {
    color: var(--secondary-text-color, #727272);
  }
  .empty { margin: 0; padding: 0 16px 16px; }
  .cameras { display: flex; flex-direction: column; gap: 16px; padding: 0 16px 16px; }
  .camera + .camera { border-top: 1px solid var(--divider-color, #e0e0e0); padding-top: 16px; }
  .camera-header { display: flex; align-items: center; gap: 8px; min-width: 0; }
  .camera-name {
    flex: 1; margin: 0; font-size: 16px; font-weight: 500;
    overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
  }
  .risk-badge, .event-level { border-radius: 12px; font-weight: 600; white-space: nowrap; }
  .risk-badge { padding: 2px 10px; font-size: 12px; }
  .event-level { padding: 0 8px; font-size: 11px; }
  .score, .event-time { font-size: 13px; font-variant-numeric: tabular-nums; white-space: nowrap; }
  .media { margin-top: 8px; }
  .latest-image {
    display: block; width: 100%; height: auto; border-radius: 8px;
    background: var(--divider-color, #e0e0e0);
  }
  .no-image {
    margin: 0; padding: 24px 8px; text-align: center; font-size: 14px; border-radius: 8px;
    border: 1px dashed var(--divider-color, #e0e0e0);
  }
  .timeline { list-style: none; margin: 8px 0 0; padding: 0; }
  .no-events { margin: 8px 0 0; font-size: 14px; }
  .event-row {
    display: grid; grid-template-columns: auto auto 1fr; gap: 2px 8px; align-items: baseline;
    width: 100%; margin: 0; padding: 8px 4px; border: 0; border-radius: 4px;
    border-top: 1px solid var(--divider-color, #e0e0e0);
    background: none; color: inherit; font: inherit; text-align: start; cursor: pointer;
  }
  .timeline li:first-child .event-row { border-top-color: transparent; }
  .event-row:hover { background: rgba(127, 127, 127, 0.08); }
  .event-row:focus-visible, .close-button:focus-visible {
    outline: 2px solid var(--primary-color, #03a9f4); outline-offset: -2px;
  }
  .event-time { font-size: 12px; }
  .event-summary { font-size: 14px; overflow-wrap: anywhere; }
  .event-objects { grid-column: 3; font-size: 12px; }
  dialog.event-dialog {
    width: min(720px, calc(100vw - 32px)); max-height: calc(100vh - 32px); padding: 0;
    border: none; border-radius: var(--ha-card-border-radius, 12px);
    background: var(--card-background-color, var(--ha-card-background, #fff));
    color: var(--primary-text-color, #212121); box-shadow: 0 8px 32px rgba(0, 0, 0, 0.4);
  }
  dialog.event-dialog::backdrop { background: rgba(0, 0, 0, 0.6); }
  .dialog-head { display: flex; align-items: center; gap: 8px; padding: 12px 16px; }
  .dialog-title { flex: 1; margin: 0; font-size: 16px; font-weight: 500; }
  .dialog-media { background: #000; }
  .dialog-media img, .dialog-media video {
    display: block; width: 100%; max-height: 60vh; object-fit: contain;
  }
  .dialog-body { padding: 12px 16px 16px; font-size: 14px; }
  .dialog-body p { margin: 0 0 8px; overflow-wrap: anywhere; }
  .dialog-summary { font-weight: 500; }
  .dialog-reasoning { white-space: pre-wrap; }
  .close-button {
    padding: 4px 12px; border: 1px solid var(--divider-color, #e0e0e0); border-radius: 4px;
    background: none; color: var(--primary-color, #03a9f4); font: inherit; cursor: pointer;
  }
  ${LEVEL_CSS}
`;

/**
 * The dashboard card. Rendering is incremental: sections are built once per camera list /
 * config, live state only touches the badge and image, and a timeline is rebuilt only when
 * its events are re-fetched. That keeps the frequent `hass` setter cheap.
 */
class AiSecurityCard extends HTMLElement {
  constructor() {
    super();
    this.attachShadow({ mode: "open" });
    this._config = null;
    this._hass = undefined;
    /** @type {Array<object>|null} camera list from the backend, null until loaded */
    this._cameraList = null;
    this._cameraListSignature = "";
    this._loadingCameras = false;
    this._cameraError = false;
    /** @type {Map<string, object>} per-camera state, keyed by `${entry}/${camera_id}` */
    this._cams = new Map();
    this._interval = null;
    this._dialogReturnFocus = null;
  }

  static getConfigElement() {
    return document.createElement(EDITOR_TYPE);
  }

  static getStubConfig() {
    return { events: DEFAULT_EVENTS };
  }

  setConfig(config) {
    this._config = normalizeConfig(config);
    this._renderShell();
    this._buildSections();
    if (this._hass && this._cameraList === null) this._loadCameras();
  }

  set hass(hass) {
    const first = this._hass === undefined;
    this._hass = hass;
    if (!this._config) return;
    if (first || (this._cameraList === null && !this._loadingCameras && !this._cameraError)) {
      this._loadCameras();
    }
    for (const cam of this._cams.values()) {
      this._updateLive(cam);
      if (this._watchedChanged(cam)) this._requestRefresh(cam);
    }
  }

  get hass() {
    return this._hass;
  }

  getCardSize() {
    const count = this._cameraList ? this._cams.size : this._config?.cameras?.length || 1;
    return 3 + count * 4;
  }

  connectedCallback() {
    if (this._interval === null) {
      this._interval = setInterval(() => this._periodic(), PERIODIC_REFRESH_MS);
    }
    // Back on screen (view switch): media URLs may have expired while we were detached.
    if (this._hass && this._cameraList) this._periodic();
  }

  disconnectedCallback() {
    clearInterval(this._interval);
    this._interval = null;
    for (const cam of this._cams.values()) {
      clearTimeout(cam.timer);
      cam.timer = null;
    }
  }

  /** Every minute: re-read the camera list (cameras may be added) and refresh all timelines. */
  _periodic() {
    if (!this._hass || !this._config) return;
    this._loadCameras();
    for (const cam of this._cams.values()) this._requestRefresh(cam);
  }

  /** Static skeleton; only the title is data and it goes through textContent. */
  _renderShell() {
    const t = strings(this._hass);
    this.shadowRoot.innerHTML = `
      <style>${CARD_CSS}</style>
      <ha-card class="ai-security-card">
        <h1 class="card-header"></h1>
        <p class="error" role="alert"></p>
        <div class="cameras"></div>
        <p class="empty" hidden></p>
        <dialog class="event-dialog" aria-labelledby="dialog-title"></dialog>
      </ha-card>
    `;
    this.shadowRoot.querySelector(".card-header").textContent = this._config.title || t.title;
    const dialog = this.shadowRoot.querySelector(".event-dialog");
    // Native <dialog> gives Escape (via "cancel"), focus trapping and top-layer stacking, so
    // it can live inside <ha-card> (tests find it under the card root) without being clipped.
    dialog.addEventListener("cancel", (ev) => {
      ev.preventDefault();
      this._closeDialog();
    });
    dialog.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape") {
        ev.preventDefault();
        this._closeDialog();
      }
    });
    // A click on the backdrop targets the dialog element itself.
    dialog.addEventListener("click", (ev) => {
      if (ev.target === dialog) this._closeDialog();
    });
  }

  _setError(message) {
    const node = this.shadowRoot?.querySelector(".error");
    if (node) node.textContent = message ? `${strings(this._hass).error}: ${message}` : "";
  }

  /** Load the camera list; rebuild the sections only if it actually changed. */
  async _loadCameras() {
    if (this._loadingCameras || !this._hass) return;
    this._loadingCameras = true;
    try {
      const cameras = await fetchCameras(this._hass);
      this._cameraError = false;
      this._setError("");
      const signature = JSON.stringify(cameras);
      if (signature !== this._cameraListSignature || this._cameraList === null) {
        this._cameraList = cameras;
        this._cameraListSignature = signature;
        this._buildSections();
      }
    } catch (err) {
      console.warn("ai-security-card: loading cameras failed", err);
      // Retried by the periodic timer, not on every hass update.
      this._cameraError = true;
      this._setError(errorMessage(err));
    } finally {
      this._loadingCameras = false;
    }
  }

  /** Cameras to show: filtered by hub and id list; ordered like `cameras:` when given. */
  _selectedCameras() {
    let list = this._cameraList || [];
    const entry = this._config.config_entry_id;
    if (entry) list = list.filter((cam) => cam.config_entry_id === entry);
    const wanted = this._config.cameras;
    if (wanted && wanted.length) {
      list = list
        .filter((cam) => wanted.includes(cam.camera_id))
        .sort((a, b) => wanted.indexOf(a.camera_id) - wanted.indexOf(b.camera_id));
    }
    return list;
  }

  /**
   * (Re)build one section per selected camera. Cached events are carried over by key, so a
   * config edit in the editor preview (a setConfig per keystroke) neither flashes empty
   * timelines nor re-fetches unless the number of events changed.
   */
  _buildSections() {
    const container = this.shadowRoot?.querySelector(".cameras");
    if (!container || !this._config) return;
    const t = strings(this._hass);
    const old = this._cams;
    for (const cam of old.values()) clearTimeout(cam.timer);
    this._cams = new Map();
    container.replaceChildren();
    const empty = this.shadowRoot.querySelector(".empty");
    if (this._cameraList === null) {
      empty.textContent = t.loading;
      empty.hidden = false;
      return;
    }
    const selected = this._selectedCameras();
    empty.textContent = t.noCameras;
    empty.hidden = selected.length > 0;
    for (const info of selected) {
      const key = `${info.config_entry_id}/${info.camera_id}`;
      const previous = old.get(key);
      const cam = {
        key,
        info,
        events: previous?.events ?? null,
        pageSize: previous?.pageSize ?? 0,
        error: previous?.error ?? "",
        seen: new Map(),
        timer: null,
        inflight: false,
        again: false,
        lastFetch: previous?.lastFetch ?? 0,
        imageCandidates: [],
        imageIndex: 0,
        nodes: this._buildSection(info, t),
      };
      this._cams.set(key, cam);
      container.append(cam.nodes.section);
      cam.nodes.image.addEventListener("error", () => this._nextImage(cam));
      if (this._hass) {
        this._updateLive(cam);
        this._watchedChanged(cam); // record the current state objects as the baseline
        this._renderTimeline(cam);
        if (!cam.events || cam.pageSize !== this._config.events) this._requestRefresh(cam, 0);
      } else {
        this._renderTimeline(cam);
      }
    }
  }

  /** DOM for one camera; returns the nodes later updates touch. */
  _buildSection(info, t) {
    const section = el("section", "camera");
    section.dataset.cameraId = info.camera_id;
    section.dataset.configEntryId = String(info.config_entry_id ?? "");
    const header = el("div", "camera-header");
    const name = el("h2", "camera-name", info.name || info.camera_id);
    const badge = el("span", "risk-badge");
    const score = el("span", "score");
    header.append(name, badge, score);
    const media = el("div", "media");
    const image = el("img", "latest-image");
    image.loading = "lazy";
    image.alt = `${info.name || info.camera_id}: ${t.latestAlt}`;
    image.hidden = true;
    const noImage = el("p", "no-image", t.noDetection);
    media.append(image, noImage);
    const timeline = el("ul", "timeline");
    const noEvents = el("p", "no-events", t.noEvents);
    noEvents.hidden = true;
    const camError = el("p", "camera-error");
    section.append(header, media, timeline, noEvents, camError);
    return { section, badge, score, image, noImage, timeline, noEvents, camError };
  }

  /** Badge, score and latest image from `hass.states`; DOM is only written when values change. */
  _updateLive(cam) {
    const states = this._hass?.states || {};
    const entities = cam.info.entities || {};
    const t = strings(this._hass);
    const { badge, score } = cam.nodes;
    const level = normalizeLevel(states[entities.risk_level]?.state);
    const levelText = t.levels[level];
    if (badge.dataset.level !== level || badge.textContent !== levelText) {
      badge.dataset.level = level;
      badge.textContent = levelText;
    }
    const value = Number.parseFloat(states[entities.risk_score]?.state);
    const scoreText = Number.isFinite(value) ? `${t.score} ${Math.round(value)}` : "";
    if (score.textContent !== scoreText) score.textContent = scoreText;

    // Both pictures keep their URL while their content changes, so a version parameter
    // derived from the entities' last_updated makes the browser load the new picture.
    const detection = states[entities.latest_detection];
    const lastEvent = states[entities.last_event];
    const version = [detection?.last_updated, lastEvent?.last_updated]
      .map((stamp) => Date.parse(stamp ?? "") || 0)
      .reduce((a, b) => Math.max(a, b), 0);
    const candidates = [detection, lastEvent]
      .map((so) => safeUrl(so?.attributes?.entity_picture))
      .filter(Boolean)
      .map((url) => (version ? withParam(url, "v", version) : url));
    if (candidates.join("\n") !== cam.imageCandidates.join("\n")) {
      cam.imageCandidates = candidates;
      cam.imageIndex = 0;
      this._showImage(cam);
    }
  }

  _showImage(cam) {
    const { image, noImage } = cam.nodes;
    const url = cam.imageCandidates[cam.imageIndex];
    if (url) {
      if (image.getAttribute("src") !== url) image.src = url;
      image.hidden = false;
      noImage.hidden = true;
    } else {
      image.removeAttribute("src");
      image.hidden = true;
      noImage.hidden = false;
    }
  }

  /** A picture failed (e.g. the camera has no frame yet): try the fallback, then placeholder. */
  _nextImage(cam) {
    // Ignore late errors from a URL that has already been replaced.
    if (cam.nodes.image.getAttribute("src") !== cam.imageCandidates[cam.imageIndex]) return;
    cam.imageIndex += 1;
    this._showImage(cam);
  }

  /**
   * Whether the entities that signal a new or updated event changed since the last check.
   * Compares `last_updated` (not only object identity) so a reconnect, which replaces every
   * state object, does not trigger a fetch storm.
   */
  _watchedChanged(cam) {
    const states = this._hass?.states || {};
    const entities = cam.info.entities || {};
    let changed = false;
    for (const id of [entities.risk_level, entities.risk_score, entities.last_event]) {
      if (!id) continue;
      const current = states[id];
      if (!cam.seen.has(id)) {
        cam.seen.set(id, current);
        continue;
      }
      const previous = cam.seen.get(id);
      if (current === previous) continue;
      cam.seen.set(id, current);
      if (current?.last_updated !== previous?.last_updated || current?.state !== previous?.state) {
        changed = true;
      }
    }
    return changed;
  }

  /**
   * Schedule an event fetch, at most one per MIN_FETCH_INTERVAL_MS per camera; requests made
   * while one is scheduled are absorbed by it (throttle with trailing call).
   */
  _requestRefresh(cam, settle = SETTLE_MS) {
    if (cam.timer || !this._hass) return;
    const wait = Math.max(settle, cam.lastFetch + MIN_FETCH_INTERVAL_MS - Date.now());
    cam.timer = setTimeout(() => {
      cam.timer = null;
      this._fetchEvents(cam);
    }, wait);
  }

  async _fetchEvents(cam) {
    if (cam.inflight) {
      cam.again = true;
      return;
    }
    if (this._cams.get(cam.key) !== cam) return; // section was rebuilt meanwhile
    cam.inflight = true;
    cam.lastFetch = Date.now();
    const pageSize = this._config.events;
    try {
      const result = await this._hass.callWS({
        type: "ai_security/search_events",
        config_entry_id: cam.info.config_entry_id,
        cameras: [cam.info.camera_id],
        page_size: pageSize,
      });
      const events = result?.events;
      if (!Array.isArray(events)) throw new Error("Unexpected reply to ai_security/search_events");
      cam.events = events.filter((ev) => ev && typeof ev === "object");
      cam.pageSize = pageSize;
      cam.error = "";
    } catch (err) {
      console.warn(`ai-security-card: loading events for ${cam.info.camera_id} failed`, err);
      cam.error = errorMessage(err);
    } finally {
      cam.inflight = false;
    }
    if (this._cams.get(cam.key) !== cam) return;
    this._renderTimeline(cam);
    if (cam.again) {
      cam.again = false;
      this._requestRefresh(cam);
    }
  }

  /** Rebuild one camera's timeline from its cached events. */
  _renderTimeline(cam) {
    const t = strings(this._hass);
    const { timeline, noEvents, camError } = cam.nodes;
    camError.textContent = cam.error ? `${t.error}: ${cam.error}` : "";
    const events = (cam.events || []).slice(0, this._config.events);
    // Keep keyboard focus on the same event across the periodic re-render.
    const active = this.shadowRoot.activeElement;
    const focusedId = active?.parentNode?.parentNode === timeline ? active.dataset.eventId : null;
    timeline.replaceChildren(...events.map((event) => this._eventRow(event, t)));
    if (focusedId) this._findRow(focusedId)?.focus();
    noEvents.textContent = cam.events === null ? t.loading : t.noEvents;
    noEvents.hidden = events.length > 0 || (cam.events === null && Boolean(cam.error));
  }

  _eventRow(event, t) {
    const item = el("li");
    const row = el("button", "event-row");
    row.type = "button";
    row.dataset.eventId = String(event.event_id ?? "");
    const level = String(event.risk_level ?? "");
    row.dataset.level = level;
    const levelKey = normalizeLevel(level);
    const chip = el("span", "event-level", t.levels[levelKey] || level);
    chip.dataset.level = levelKey;
    const summary = el("span", "event-summary", event.summary || "");
    row.append(
      el("span", "event-time", formatTime(event.started_at, this._hass)),
      chip,
      summary,
      el("span", "event-objects", joinList(event.object_types)),
    );
    row.addEventListener("click", () => this._openDialog(event, row));
    item.append(row);
    return item;
  }

  /** Show one event (its clip with its key frame, else the key frame) in the card's dialog. */
  _openDialog(event, returnFocus) {
    const dialog = this.shadowRoot.querySelector(".event-dialog");
    if (!dialog) return;
    const t = strings(this._hass);
    this._dialogReturnFocus = returnFocus.dataset.eventId;
    const levelKey = normalizeLevel(event.risk_level);

    const head = el("div", "dialog-head");
    const title = el("h2", "dialog-title", formatTime(event.started_at, this._hass));
    title.id = "dialog-title";
    const chip = el("span", "event-level", t.levels[levelKey]);
    chip.dataset.level = levelKey;
    const score = Number(event.risk_score);
    const scoreNode = el("span", "score", Number.isFinite(score) ? `${t.score} ${score}` : "");
    const close = el("button", "close-button", t.close);
    close.type = "button";
    close.addEventListener("click", () => this._closeDialog());
    head.append(title, chip, scoreNode, close);

    const media = el("div", "dialog-media");
    const clip = safeUrl(event.clip_url);
    const image = safeUrl(event.image_url);
    if (clip) {
      media.append(clipPlayer(clip, image));
    } else if (image) {
      const img = el("img");
      img.alt = event.summary ? String(event.summary) : t.eventAlt;
      img.src = image;
      media.append(img);
    } else {
      media.hidden = true;
    }

    const body = el("div", "dialog-body");
    if (event.camera_name) body.append(el("p", "dialog-camera", event.camera_name));
    body.append(el("p", "dialog-summary", event.summary || ""));
    const objects = joinList(event.object_types);
    if (objects) body.append(this._labelled(t.objects, objects, "dialog-objects"));
    const zones = joinList(event.zones);
    if (zones) body.append(this._labelled(t.zones, zones, "dialog-zones"));
    if (event.reasoning) {
      body.append(el("p", "dialog-label", t.reasoning));
      body.append(el("p", "dialog-reasoning", event.reasoning));
    }

    dialog.replaceChildren(head, media, body);
    dialog.dataset.eventId = String(event.event_id ?? "");
    if (!dialog.open) {
      if (typeof dialog.showModal === "function") dialog.showModal();
      else dialog.setAttribute("open", "");
    }
    close.focus();
  }

  /** The timeline row of an event, looked up by id because timelines are rebuilt. */
  _findRow(eventId) {
    const rows = this.shadowRoot.querySelectorAll(".event-row");
    return [...rows].find((row) => row.dataset.eventId === eventId);
  }

  /** "Label: value" paragraph with both parts as text nodes. */
  _labelled(label, value, className) {
    const p = el("p", className);
    p.append(el("span", "dialog-label", `${label}: `), document.createTextNode(value));
    return p;
  }

  _closeDialog() {
    const dialog = this.shadowRoot?.querySelector(".event-dialog");
    if (!dialog) return;
    // Stop playback and downloads before hiding; a closed dialog keeps its children.
    for (const video of dialog.querySelectorAll("video")) {
      video.pause();
      video.removeAttribute("src");
      video.load();
    }
    dialog.replaceChildren();
    if (typeof dialog.close === "function" && dialog.open) dialog.close();
    else dialog.removeAttribute("open");
    const eventId = this._dialogReturnFocus;
    this._dialogReturnFocus = null;
    if (eventId !== null) this._findRow(eventId)?.focus();
  }
}

const EDITOR_CSS = `
  :host { display: block; color: var(--primary-text-color, #212121); }
  form { display: flex; flex-direction: column; gap: 16px; }
  .field { display: flex; flex-direction: column; gap: 4px; font-size: 14px; }
  .field span { color: var(--secondary-text-color, #727272); }
  input[type="text"], input[type="number"] {
    font: inherit; padding: 8px; border-radius: 4px; color: inherit;
    background: var(--card-background-color, #fff);
    border: 1px solid var(--divider-color, #e0e0e0);
  }
  input[aria-invalid="true"] { border-color: var(--error-color, #E74856); }
  input:focus-visible { outline: 2px solid var(--primary-color, #03a9f4); outline-offset: 1px; }
  fieldset {
    margin: 0; padding: 8px 12px; border-radius: 4px;
    border: 1px solid var(--divider-color, #e0e0e0);
  }
  legend { padding: 0 4px; font-size: 14px; color: var(--secondary-text-color, #727272); }
  .camera-option { display: flex; align-items: center; gap: 8px; padding: 4px 0; font-size: 14px; }
  .camera-option input { accent-color: var(--primary-color, #03a9f4); }
  .status { margin: 4px 0; font-size: 13px; color: var(--secondary-text-color, #727272); }
  .status.error { color: var(--error-color, #E74856); }
  .status:empty { display: none; }
`;

/**
 * Visual editor. The form is built once and then only its values are updated, because HA
 * calls `setConfig` again after every `config-changed`: rebuilding would steal focus from the
 * field being typed in.
 */
class AiSecurityCardEditor extends HTMLElement {
  constructor() {
    super();
    this.attachShadow({ mode: "open" });
    this._config = {};
    this._hass = undefined;
    /** @type {Array<object>|null} */
    this._cameras = null;
    this._loading = false;
    this._loadError = "";
    this._optionsSignature = null;
    this._nodes = null;
  }

  setConfig(config) {
    this._config = config && typeof config === "object" ? { ...config } : {};
    this._render();
  }

  set hass(hass) {
    this._hass = hass;
    if (this._cameras === null && !this._loading && !this._loadError) this._load();
  }

  get hass() {
    return this._hass;
  }

  async _load() {
    this._loading = true;
    this._render();
    try {
      this._cameras = await fetchCameras(this._hass);
      this._loadError = "";
    } catch (err) {
      console.warn("ai-security-card-editor: loading cameras failed", err);
      this._loadError = errorMessage(err);
    } finally {
      this._loading = false;
    }
    this._render();
  }

  /** Build the static form once; inputs are wired to emit config changes. */
  _build() {
    const t = strings(this._hass).editor;
    this.shadowRoot.innerHTML = `
      <style>${EDITOR_CSS}</style>
      <form class="ai-security-card-editor" novalidate>
        <label class="field"><span class="title-label"></span>
          <input class="title-input" type="text" autocomplete="off">
        </label>
        <label class="field"><span class="events-label"></span>
          <input class="events-input" type="number" min="1" max="${MAX_EVENTS}" step="1"
            inputmode="numeric">
        </label>
        <fieldset class="cameras-field">
          <legend></legend>
          <p class="status" role="status"></p>
          <div class="camera-options"></div>
        </fieldset>
      </form>
    `;
    const root = this.shadowRoot;
    const nodes = {
      form: root.querySelector("form"),
      title: root.querySelector(".title-input"),
      events: root.querySelector(".events-input"),
      status: root.querySelector(".status"),
      options: root.querySelector(".camera-options"),
    };
    root.querySelector(".title-label").textContent = t.title;
    root.querySelector(".events-label").textContent = t.events;
    root.querySelector("legend").textContent = t.cameras;
    nodes.form.addEventListener("submit", (ev) => ev.preventDefault());
    nodes.title.addEventListener("input", () => {
      const title = nodes.title.value;
      this._emit((config) => {
        if (title.trim()) config.title = title;
        else delete config.title;
      });
    });
    const eventsValue = () => {
      const value = Number(nodes.events.value);
      return Number.isInteger(value) && value >= 1 && value <= MAX_EVENTS ? value : null;
    };
    nodes.events.addEventListener("input", () => {
      nodes.events.setAttribute("aria-invalid", String(eventsValue() === null));
    });
    // "change", not "input": half-typed numbers would otherwise make the preview throw.
    nodes.events.addEventListener("change", () => {
      const value = eventsValue();
      nodes.events.setAttribute("aria-invalid", String(value === null));
      if (value !== null) this._emit((config) => (config.events = value));
    });
    nodes.options.addEventListener("change", () => {
      const checked = [...nodes.options.querySelectorAll("input:checked")].map(
        (input) => input.value,
      );
      this._emit((config) => {
        if (checked.length) config.cameras = checked;
        else delete config.cameras;
      });
    });
    this._nodes = nodes;
  }

  /**
   * Checkbox options: cameras of the configured hub (or all), one per camera id since the
   * card filters by id; hub names are added only when several hubs are involved. Ids in the
   * config that the backend no longer knows stay listed so they can be unticked.
   */
  _options() {
    let cameras = this._cameras || [];
    if (this._config.config_entry_id) {
      cameras = cameras.filter((cam) => cam.config_entry_id === this._config.config_entry_id);
    }
    const hubs = new Set(cameras.map((cam) => cam.config_entry_id));
    const options = new Map();
    for (const cam of cameras) {
      if (options.has(cam.camera_id)) continue;
      const name = cam.name || cam.camera_id;
      const hub = hubs.size > 1 && cam.hub_name ? ` (${cam.hub_name})` : "";
      options.set(cam.camera_id, `${name}${hub}`);
    }
    const configured = Array.isArray(this._config.cameras) ? this._config.cameras : [];
    for (const id of configured) {
      if (typeof id === "string" && !options.has(id)) options.set(id, id);
    }
    return [...options].map(([id, label]) => ({ id, label }));
  }

  /** Sync the form with the config and camera list without replacing focused inputs. */
  _render() {
    if (!this._nodes) this._build();
    const nodes = this._nodes;
    const active = this.shadowRoot.activeElement;
    const t = strings(this._hass).editor;
    if (active !== nodes.title) nodes.title.value = this._config.title ?? "";
    if (active !== nodes.events) {
      nodes.events.value = String(this._config.events ?? DEFAULT_EVENTS);
      nodes.events.removeAttribute("aria-invalid");
    }
    nodes.status.classList.toggle("error", Boolean(this._loadError));
    nodes.status.textContent = this._loadError
      ? `${strings(this._hass).error}: ${this._loadError}`
      : this._loading
        ? t.loadingCameras
        : "";

    const options = this._options();
    const signature = JSON.stringify(options);
    if (signature !== this._optionsSignature) {
      this._optionsSignature = signature;
      nodes.options.replaceChildren(
        ...options.map(({ id, label }) => {
          const row = el("label", "camera-option");
          const input = el("input");
          input.type = "checkbox";
          input.value = id;
          row.append(input, el("span", null, label));
          return row;
        }),
      );
    }
    const selected = new Set(Array.isArray(this._config.cameras) ? this._config.cameras : []);
    for (const input of nodes.options.querySelectorAll("input")) {
      input.checked = selected.has(input.value);
    }
  }

  /** Apply a change to a copy of the config and tell HA (which re-calls setConfig). */
  _emit(mutate) {
    const config = { ...this._config };
    mutate(config);
    this._config = config;
    this.dispatchEvent(
      new CustomEvent("config-changed", { detail: { config }, bubbles: true, composed: true }),
    );
  }
}

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
