/**
 * The card's visual editor (`ai-security-card-editor`): title, hub, the cameras to show (from
 * the list the backend knows), events per camera and whether unreviewed events come first.
 *
 * Inside Home Assistant it is Home Assistant's own form (`ha-form` with selectors), so it
 * looks and behaves like the editors of the stock cards (themes, languages, a phone's
 * keyboard). A page without Home Assistant's elements (the card alone) gets plain inputs.
 */

import { DEFAULT_EVENTS, MAX_EVENTS, fetchCameras } from "./config.js";
import { el } from "./dom.js";
import { errorMessage, strings } from "./format.js";
import { EDITOR_CSS } from "./styles.js";

/**
 * Visual editor. The form is built once and then only its values are updated, because HA
 * calls `setConfig` again after every `config-changed`: rebuilding would steal focus from the
 * field being typed in.
 */
export class AiSecurityCardEditor extends HTMLElement {
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
    /** @type {"ha"|"plain"|null} Home Assistant's form or plain inputs, once known. */
    this._mode = null;
    this._form = null;
    this._schema = null;
    this._choosing = false;
  }

  setConfig(config) {
    this._config = config && typeof config === "object" ? { ...config } : {};
    this._render();
  }

  set hass(hass) {
    this._hass = hass;
    if (this._mode === null && !this._choosing) this._chooseMode();
    if (this._cameras === null && !this._loading && !this._loadError) this._load();
    if (this._form) this._form.hass = hass;
  }

  /**
   * Use `ha-form` when Home Assistant can give it. The dashboard loads it with the editors of
   * its own cards, so when it is not defined yet, one of them is asked for (the way Home
   * Assistant's card helpers load an editor) and the element is awaited briefly.
   */
  async _chooseMode() {
    this._choosing = true;
    let ready = Boolean(customElements.get("ha-form"));
    if (!ready && typeof window.loadCardHelpers === "function") {
      try {
        const helpers = await window.loadCardHelpers();
        const card = await helpers.createCardElement({ type: "entities", entities: [] });
        await card?.constructor?.getConfigElement?.();
        await Promise.race([
          customElements.whenDefined("ha-form"),
          new Promise((resolve) => setTimeout(resolve, 3000)),
        ]);
      } catch (err) {
        console.warn("ai-security-card-editor: Home Assistant's form is not available", err);
      }
      ready = Boolean(customElements.get("ha-form"));
    }
    this._mode = ready ? "ha" : "plain";
    this._choosing = false;
    this._render();
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
        <label class="check-field"><input class="unreviewed-input" type="checkbox">
          <span class="unreviewed-label"></span>
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
      unreviewed: root.querySelector(".unreviewed-input"),
      status: root.querySelector(".status"),
      options: root.querySelector(".camera-options"),
    };
    root.querySelector(".title-label").textContent = t.title;
    root.querySelector(".events-label").textContent = t.events;
    root.querySelector("legend").textContent = t.cameras;
    root.querySelector(".unreviewed-label").textContent = t.unreviewedFirst;
    nodes.unreviewed.addEventListener("change", () => {
      const first = nodes.unreviewed.checked;
      this._emit((config) => {
        if (first) config.unreviewed_first = true;
        else delete config.unreviewed_first;
      });
    });
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

  /** Show the form of the mode chosen (nothing before it is known). */
  _render() {
    if (this._mode === "ha") this._renderHaForm();
    else if (this._mode === "plain") this._renderPlain();
  }

  /** Home Assistant's form: the config as its data, one selector per option. */
  _renderHaForm() {
    if (!this._form) {
      this.shadowRoot.innerHTML = `<style>${EDITOR_CSS}</style><p class="status" role="status"></p>`;
      const form = document.createElement("ha-form");
      form.addEventListener("value-changed", (ev) => this._formChanged(ev.detail.value));
      this.shadowRoot.append(form);
      this._form = form;
    }
    const t = strings(this._hass).editor;
    const options = this._options();
    const signature = JSON.stringify(options);
    if (signature !== this._optionsSignature || !this._schema) {
      // A new schema only when the cameras change: ha-form re-renders its fields on it.
      this._optionsSignature = signature;
      this._schema = [
        { name: "title", selector: { text: {} } },
        { name: "config_entry_id", selector: { config_entry: { integration: "ai_security" } } },
        {
          name: "cameras",
          selector: {
            select: {
              multiple: true,
              mode: "list",
              options: options.map(({ id, label }) => ({ value: id, label })),
            },
          },
        },
        {
          name: "events",
          selector: { number: { min: 1, max: MAX_EVENTS, step: 1, mode: "box" } },
        },
        { name: "unreviewed_first", selector: { boolean: {} } },
      ];
    }
    const labels = {
      title: t.title,
      config_entry_id: t.hub,
      cameras: t.cameras,
      events: t.events,
      unreviewed_first: t.unreviewedFirst,
    };
    const status = this.shadowRoot.querySelector(".status");
    status.classList.toggle("error", Boolean(this._loadError));
    status.textContent = this._loadError
      ? `${strings(this._hass).error}: ${this._loadError}`
      : this._loading
        ? t.loadingCameras
        : "";
    this._form.hass = this._hass;
    this._form.computeLabel = (item) => labels[item.name] ?? item.name;
    this._form.schema = this._schema;
    this._form.data = {
      events: DEFAULT_EVENTS,
      unreviewed_first: false,
      cameras: [],
      ...this._config,
    };
  }

  /** Keep what the form says, leaving out what is empty or the default's own choice. */
  _formChanged(value) {
    this._emit((config) => {
      for (const key of ["title", "config_entry_id"]) {
        if (typeof value[key] === "string" && value[key].trim()) config[key] = value[key];
        else delete config[key];
      }
      const cameras = Array.isArray(value.cameras) ? value.cameras.filter(Boolean) : [];
      if (cameras.length) config.cameras = cameras;
      else delete config.cameras;
      const events = Number(value.events);
      if (Number.isInteger(events) && events >= 1 && events <= MAX_EVENTS) config.events = events;
      if (value.unreviewed_first === true) config.unreviewed_first = true;
      else delete config.unreviewed_first;
    });
  }

  /** Plain inputs: synced with the config and camera list without replacing focused inputs. */
  _renderPlain() {
    if (!this._nodes) this._build();
    const nodes = this._nodes;
    const active = this.shadowRoot.activeElement;
    const t = strings(this._hass).editor;
    if (active !== nodes.title) nodes.title.value = this._config.title ?? "";
    nodes.unreviewed.checked = this._config.unreviewed_first === true;
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
