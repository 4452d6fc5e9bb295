"""Integrations of this repository; a package, so tests import this copy, not the harness's."""
