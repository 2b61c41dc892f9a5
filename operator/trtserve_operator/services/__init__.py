"""Decisions of the operator: what to apply and what the status says (no API calls here)."""
