"""Webhooks, pure: signing the job-done callbacks, verifying OpenAI's
events, and where callbacks may go."""
