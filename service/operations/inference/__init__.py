"""The completion proxy (`proxy`), the org's models and aliases
(`models`), and usage with its costs (`usage`)."""
