"""Speculative decoding from the conversation itself: no draft model (docs/speculative-decoding.md)."""
