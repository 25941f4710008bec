"""statusbot: a Mastodon bot that watches its own instance's health and talks about it."""

__version__ = "0.1.0"
