"""The user service that keeps codexpc running: a systemd user unit or a launchd agent."""
