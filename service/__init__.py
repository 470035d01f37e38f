"""tunegate: the HTTP service and the domain code shared with the workers."""
