"""Constants of the AI Security integration."""

import logging
from typing import Final

DOMAIN: Final = "ai_security"
LOGGER = logging.getLogger(__package__)

DEFAULT_NAME: Final = "AI Security"
DEFAULT_DETECTOR_URL: Final = "http://127.0.0.1:8090"
DEFAULT_LLM_URL: Final = "http://127.0.0.1:8080"

CONF_CAMERA_ROOT: Final = "camera_root"
CONF_DETECTOR_URLS: Final = "detector_urls"
CONF_LLM_URLS: Final = "llm_urls"
CONF_LLM_URL: Final = "llm_url"
"""The one LLM URL of entries before 1.3 (a string, "" for none); only the migration reads it."""
CONF_LLM_API: Final = "llm_api"
CONF_LLM_ENTITY: Final = "llm_entity"
"""An AI Task entity that judges incidents beside (or instead of) the LLM servers; optional."""
CONF_DATABASE_URL: Final = "database_url"
CONF_HISTORY_BEFORE: Final = "history_before"
"""When the hub last started watching a folder or a database afresh (reconfigured to another
folder, moved to another database): uploads older than it, or than the entry, are history."""

POSTGRESQL_REQUIREMENT: Final = "psycopg[binary]==3.3.9"
"""Installed by Home Assistant only when a user chooses PostgreSQL (SQLite needs nothing)."""
