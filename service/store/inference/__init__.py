"""Redis records of the proxy: tuned models, aliases and the cached
caller view (`models`), rate-limit buckets, and usage."""
