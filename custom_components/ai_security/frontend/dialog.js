/**
 * The card's event dialog: one event's clip with its key frame (or the key frame alone), its
 * level, score, summary, objects, zones and reasoning, in a native modal <dialog>.
 */

import { el, safeUrl } from "./dom.js";
import { formatTime, joinList, normalizeLevel, strings } from "./format.js";

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

/**
 * Mix the dialog methods into the card's class. A mixin, not helper functions, because they
 * use the card's shadow root and remember which timeline row gets the focus back on close.
 * @param {typeof HTMLElement} Base
 */
export const withEventDialog = (Base) =>
  class extends Base {
    /** Show one event (its clip with its key frame, else the key frame) in the card's dialog. */
    _openDialog(event, returnFocus, cam) {
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
      if (event.title) body.append(el("p", "dialog-verdict-title", String(event.title)));
      body.append(el("p", "dialog-summary", event.summary || ""));
      if (event.calibration) {
        // The user's own reviews moved the score: said with the score given before, by the
        // AI or, when it could not be asked, by the rules.
        const said = Number(event.raw_score);
        const who = event.source === "heuristic" ? t.rulesSaid : t.aiSaid;
        const own = Number.isFinite(said) ? ` (${who} ${said})` : "";
        body.append(
          this._labelled(t.calibrated, `${event.calibration}${own}`, "dialog-calibration"),
        );
      }
      if (event.contradiction) {
        // The verifier found the verdict denying what the detector saw: said first, plainly.
        body.append(this._labelled(t.contradiction, String(event.contradiction), "dialog-warning"));
      }
      const objects = joinList(event.object_types);
      if (objects) body.append(this._labelled(t.objects, objects, "dialog-objects"));
      const zones = joinList(event.zones);
      if (zones) body.append(this._labelled(t.zones, zones, "dialog-zones"));
      if (event.observations) {
        body.append(el("p", "dialog-label", t.observations));
        body.append(el("p", "dialog-observations", String(event.observations)));
      }
      const unverified = joinList(event.unverified_objects);
      if (unverified) body.append(this._labelled(t.unverified, unverified, "dialog-unverified"));
      const concerns = Array.isArray(event.other_concerns) ? event.other_concerns : [];
      if (concerns.length) {
        body.append(el("p", "dialog-label", t.concerns));
        const list = el("ul", "dialog-concerns");
        for (const concern of concerns) list.append(el("li", null, String(concern)));
        body.append(list);
      }
      if (event.reasoning) {
        body.append(el("p", "dialog-label", t.reasoning));
        body.append(el("p", "dialog-reasoning", event.reasoning));
      }
      const audit = this._audit(event, t);
      if (audit) body.append(el("p", "dialog-audit", audit));
      if (cam) body.append(this._reviewBar(event, cam, t));

      dialog.replaceChildren(head, media, body);
      dialog.dataset.eventId = String(event.event_id ?? "");
      if (!dialog.open) {
        if (typeof dialog.showModal === "function") dialog.showModal();
        else dialog.setAttribute("open", "");
      }
      close.focus();
    }

    /**
     * One line on how the verdict was made: its confidence, who judged, from how many
     * pictures, and the start of the prompt's hash (to match it with a server's log).
     */
    _audit(event, t) {
      const parts = [];
      const confidence = Number(event.confidence);
      if (event.confidence !== null && event.confidence !== undefined && Number.isFinite(confidence)) {
        parts.push(`${t.confidence} ${Math.round(confidence * 100)}%`);
      }
      const sent = event.sent_to_llm;
      if (sent && typeof sent === "object") {
        const frames = Array.isArray(sent.frames) ? sent.frames.length : 0;
        parts.push(frames ? t.judgedFrom.replace("{count}", String(frames)) : t.judgedFromText);
        if (sent.server) parts.push(String(sent.server));
        if (sent.prompt_hash) parts.push(`${t.prompt} ${String(sent.prompt_hash).slice(0, 12)}`);
      } else if (event.source === "heuristic") {
        parts.push(t.heuristic);
      }
      return parts.join(" · ");
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
  };
