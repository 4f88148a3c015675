"""Signed licence tokens and HQ's signing keys (shared by kitctl, agent and hq)."""
