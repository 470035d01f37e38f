"""Webhooks both ways (`events`), and checking a `webhook_url`'s
destination (`destinations`)."""
