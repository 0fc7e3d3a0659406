"""The fast engine's bookkeeping and runner: paged KV blocks, prefix cache, scheduler, batching."""
