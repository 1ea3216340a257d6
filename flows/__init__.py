"""Deployable Prefect flows, one module per flow."""
