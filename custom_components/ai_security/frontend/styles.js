/**
 * The card's and the editor's style sheets, each put in its element's shadow root, so they
 * style nothing else on the dashboard; colours come from the theme's variables where it has them.
 */

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

export const CARD_CSS = `
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
  .cameras {
    display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 340px), 1fr));
    gap: 16px; padding: 0 16px 16px;
  }
  .camera {
    min-width: 0; padding-top: 16px; border-top: 1px solid var(--divider-color, #e0e0e0);
  }
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
  .learned { margin: 6px 0 0; font-size: 13px; color: var(--secondary-text-color, #727272); }
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
  .dialog-reasoning, .dialog-observations { white-space: pre-wrap; }
  .dialog-verdict-title { font-weight: 600; margin-bottom: 0; }
  .dialog-warning {
    border-left: 4px solid var(--error-color, #db4437);
    padding: 4px 8px;
    background: rgba(219, 68, 55, 0.08);
  }
  .dialog-concerns { margin: 0 0 8px; padding-left: 20px; }
  .dialog-audit { color: var(--secondary-text-color); font-size: 0.85em; }
  .review-bar { border-top: 1px solid var(--divider-color, #e0e0e0); margin-top: 12px; }
  .review-buttons { display: flex; flex-wrap: wrap; gap: 8px; margin-bottom: 8px; }
  .review-button {
    font: inherit;
    padding: 6px 12px;
    border-radius: 16px;
    border: 1px solid var(--divider-color, #c0c0c0);
    background: var(--card-background-color, #fff);
    color: var(--primary-text-color);
    cursor: pointer;
  }
  .review-button[aria-pressed="true"] {
    background: var(--primary-color, #03a9f4);
    border-color: var(--primary-color, #03a9f4);
    color: var(--text-primary-color, #fff);
  }
  .review-button[data-outcome="false_alarm"][aria-pressed="true"] {
    background: var(--secondary-text-color, #727272);
    border-color: var(--secondary-text-color, #727272);
  }
  .review-button[data-outcome="missed"][aria-pressed="true"] {
    background: var(--error-color, #db4437);
    border-color: var(--error-color, #db4437);
  }
  .review-note { width: 100%; box-sizing: border-box; font: inherit; }
  .review-status { color: var(--secondary-text-color); font-size: 0.85em; min-height: 1.2em; }
  .event-review {
    grid-column: 3; justify-self: start;
    font-size: 0.75em;
    padding: 1px 6px;
    border-radius: 8px;
    border: 1px solid var(--divider-color, #c0c0c0);
    color: var(--secondary-text-color);
  }
  .event-review[data-outcome="missed"] { color: var(--error-color, #db4437); }
  .close-button {
    padding: 4px 12px; border: 1px solid var(--divider-color, #e0e0e0); border-radius: 4px;
    background: none; color: var(--primary-color, #03a9f4); font: inherit; cursor: pointer;
  }
  ${LEVEL_CSS}
`;

export const EDITOR_CSS = `
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
  .camera-option, .check-field {
    display: flex; align-items: center; gap: 8px; padding: 4px 0; font-size: 14px;
  }
  .camera-option input, .check-field input { accent-color: var(--primary-color, #03a9f4); }
  .status { margin: 4px 0; font-size: 13px; color: var(--secondary-text-color, #727272); }
  .status.error { color: var(--error-color, #E74856); }
  .status:empty { display: none; }
`;
