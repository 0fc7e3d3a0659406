"""codexpc: a local daemon serving OpenAI's gpt-oss models over the Responses API."""

__version__ = "0.1.0"
