"""Tests of the AI Security integration."""
