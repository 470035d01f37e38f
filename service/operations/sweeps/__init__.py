"""Hyperparameter sweeps: create, cancel and promote (`create`), the
worker's advance (`runner`), its schedule, and views."""
