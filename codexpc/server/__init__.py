"""The HTTP side: routes, sessions, stream mapping, listeners, security."""
