"""Pure domain logic: stdlib and pydantic only, no I/O, no framework."""
