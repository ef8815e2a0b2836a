"""Supermetrics backfill monitor."""
