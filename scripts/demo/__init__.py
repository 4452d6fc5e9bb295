"""The live demo (scripts/develop) and its building blocks, shared with the browser tests.

- hass_api: a running Home Assistant set up the way a person would in the UI, through its own
  APIs: onboarding with a user, the integration's config flow, a dashboard holding the card.
"""
