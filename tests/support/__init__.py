"""Helpers the test tiers share (imported as `support.<module>`; fixtures live in the
conftest.py of each folder)."""
