/**
 * The user's review of an event, where they look at it: "Looks right", "False alarm" or
 * "Missed / too low", with a note, in the event dialog; the timeline row shows the outcome.
 * A review goes through the integration's `review_event` action, so it is stored with the event
 * and recorded in the audit trail like one made from an automation or a notification.
 */

import { el } from "./dom.js";
import { errorMessage, strings } from "./format.js";

/** The three outcomes, in the order the buttons show them, and what each sends. */
export const OUTCOMES = [
  { key: "right", dismissed: false, missed: false },
  { key: "false_alarm", dismissed: true, missed: false },
  { key: "missed", dismissed: false, missed: true },
];

/**
 * The outcome an event's stored review says, or null when it has not been reviewed.
 * @param {object} event
 */
export function outcomeOf(event) {
  if (!event?.reviewed) return null;
  if (event.dismissed) return "false_alarm";
  if (event.missed) return "missed";
  return "right";
}

/**
 * Mix the review methods into the card's class (they use its `hass`, its cameras' cached
 * events and its timeline rendering).
 * @param {typeof HTMLElement} Base
 */
export const withReview = (Base) =>
  class extends Base {
    /** The review bar of the event dialog: the three outcomes, a note, and what happened. */
    _reviewBar(event, cam, t) {
      const bar = el("section", "review-bar");
      bar.setAttribute("aria-label", t.review.title);
      bar.append(el("p", "dialog-label", t.review.title));
      const buttons = el("div", "review-buttons");
      const note = el("textarea", "review-note");
      note.rows = 2;
      note.maxLength = 1000;
      note.placeholder = t.review.note;
      note.setAttribute("aria-label", t.review.note);
      note.value = typeof event.review_note === "string" ? event.review_note : "";
      const status = el("p", "review-status");
      status.setAttribute("role", "status");
      const current = outcomeOf(event);
      for (const outcome of OUTCOMES) {
        const button = el("button", "review-button", t.review[outcome.key]);
        button.type = "button";
        button.dataset.outcome = outcome.key;
        button.setAttribute("aria-pressed", String(current === outcome.key));
        button.addEventListener("click", () =>
          this._sendReview(event, cam, outcome, bar, note.value),
        );
        buttons.append(button);
      }
      if (current) status.textContent = `${t.review.saved}: ${t.review[current]}`;
      bar.append(buttons, note, status);
      return bar;
    }

    /**
     * Store a review (the pressed outcome again takes the review back), then show it in the
     * dialog and the timeline. A refused review says why and changes nothing shown.
     */
    async _sendReview(event, cam, outcome, bar, note) {
      const t = strings(this._hass);
      const status = bar.querySelector(".review-status");
      const takeBack = outcomeOf(event) === outcome.key;
      for (const button of bar.querySelectorAll("button")) button.disabled = true;
      try {
        const result = await this._hass.callWS({
          type: "call_service",
          domain: "ai_security",
          service: "review_event",
          service_data: {
            config_entry_id: cam.info.config_entry_id,
            event_id: event.event_id,
            reviewed: !takeBack,
            dismissed: outcome.dismissed,
            missed: outcome.missed,
            note,
          },
          return_response: true,
        });
        const stored = result?.response;
        if (!stored || typeof stored !== "object") throw new Error(t.review.failed);
        Object.assign(event, stored);
        const now = outcomeOf(event);
        for (const button of bar.querySelectorAll(".review-button")) {
          button.setAttribute("aria-pressed", String(button.dataset.outcome === now));
        }
        status.textContent = now ? `${t.review.saved}: ${t.review[now]}` : t.review.cleared;
        if (this._cams.get(cam.key) === cam) this._renderTimeline(cam);
      } catch (err) {
        status.textContent = `${t.review.failed}: ${errorMessage(err)}`;
      } finally {
        for (const button of bar.querySelectorAll("button")) button.disabled = false;
      }
    }
  };
