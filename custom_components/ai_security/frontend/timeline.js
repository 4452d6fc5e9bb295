/**
 * The card's event timelines: when to fetch a camera's events (on a change of the entities
 * that signal one, throttled per camera), the fetch itself, and the rows drawn from them.
 */

import { MIN_FETCH_INTERVAL_MS, SETTLE_MS } from "./config.js";
import { el } from "./dom.js";
import { errorMessage, formatTime, joinList, normalizeLevel, strings } from "./format.js";
import { outcomeOf } from "./review.js";

/**
 * Mix the timeline methods into the card's class. A mixin, not helper functions, because they
 * read and write the card's own state (its config, `hass` and per-camera entries) as methods.
 * @param {typeof HTMLElement} Base
 */
export const withEventTimeline = (Base) =>
  class extends Base {
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
        if (
          current?.last_updated !== previous?.last_updated ||
          current?.state !== previous?.state
        ) {
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
        let events;
        if (this._config.unreviewed_first) {
          // The incidents still to review first (newest first), then the reviewed ones.
          events = await this._searchEvents(cam, pageSize, { reviewed: false });
          if (events.length < pageSize) {
            const rest = pageSize - events.length;
            events = events.concat(await this._searchEvents(cam, rest, { reviewed: true }));
          }
        } else {
          events = await this._searchEvents(cam, pageSize, {});
        }
        cam.events = events;
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

    /** One page of a camera's events, newest first, with the filters given. */
    async _searchEvents(cam, pageSize, filters) {
      const result = await this._hass.callWS({
        type: "ai_security/search_events",
        config_entry_id: cam.info.config_entry_id,
        cameras: [cam.info.camera_id],
        page_size: pageSize,
        ...filters,
      });
      const events = result?.events;
      if (!Array.isArray(events)) {
        throw new Error("Unexpected reply to ai_security/search_events");
      }
      return events.filter((ev) => ev && typeof ev === "object");
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
      timeline.replaceChildren(...events.map((event) => this._eventRow(event, t, cam)));
      if (focusedId) this._findRow(focusedId)?.focus();
      noEvents.textContent = cam.events === null ? t.loading : t.noEvents;
      noEvents.hidden = events.length > 0 || (cam.events === null && Boolean(cam.error));
    }

    _eventRow(event, t, cam) {
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
      const outcome = outcomeOf(event);
      if (outcome) {
        const mark = el("span", "event-review", t.review[outcome]);
        mark.dataset.outcome = outcome;
        row.append(mark);
      }
      row.addEventListener("click", () => this._openDialog(event, row, cam));
      item.append(row);
      return item;
    }

    /** The timeline row of an event, looked up by id because timelines are rebuilt. */
    _findRow(eventId) {
      const rows = this.shadowRoot.querySelectorAll(".event-row");
      return [...rows].find((row) => row.dataset.eventId === eventId);
    }
  };
