"""The gpt-oss engine: loads a checkpoint and turns prompt token ids into sampled token ids."""
