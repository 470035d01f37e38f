"""The completion proxy, pure: a request under the org's policy
(routing, PII, caps, users), what comes back, and per-key rate limits."""
