"""The Harmony layer: requests to prompt tokens, and sampled tokens to typed events."""
