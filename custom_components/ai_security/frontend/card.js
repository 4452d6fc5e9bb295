/**
 * The dashboard card's element: its shell, its camera sections and their live badge, score and
 * picture. Fetching and drawing the timelines (timeline.js), the event dialog (dialog.js) and
 * the user's reviews (review.js) are mixed into it, each in its own module; they share this
 * element's state.
 */

import {
  DEFAULT_EVENTS,
  EDITOR_TYPE,
  PERIODIC_REFRESH_MS,
  fetchCameras,
  normalizeConfig,
} from "./config.js";
import { withEventDialog } from "./dialog.js";
import { el, safeUrl, withParam } from "./dom.js";
import { errorMessage, normalizeLevel, strings } from "./format.js";
import { CARD_CSS } from "./styles.js";
import { withReview } from "./review.js";
import { withEventTimeline } from "./timeline.js";

/**
 * The dashboard card. Rendering is incremental: sections are built once per camera list /
 * config, live state only touches the badge and image, and a timeline is rebuilt only when
 * its events are re-fetched. That keeps the frequent `hass` setter cheap.
 */
export class AiSecurityCard extends withEventDialog(withReview(withEventTimeline(HTMLElement))) {
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
    // How many detections the camera's learned spots kept out today: what the user's
    // "False alarm" reviews are doing, where the reviews were made.
    const learned = el("p", "learned");
    learned.hidden = true;
    const timeline = el("ul", "timeline");
    const noEvents = el("p", "no-events", t.noEvents);
    noEvents.hidden = true;
    const camError = el("p", "camera-error");
    section.append(header, media, learned, timeline, noEvents, camError);
    return { section, badge, score, image, noImage, learned, timeline, noEvents, camError };
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
    const kept = Number.parseInt(states[entities.suppressed_today]?.state ?? "", 10);
    const learnedText = kept > 0 ? t.learnedToday(kept) : "";
    if (cam.nodes.learned.textContent !== learnedText) {
      cam.nodes.learned.textContent = learnedText;
      cam.nodes.learned.hidden = !learnedText;
    }

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
}
