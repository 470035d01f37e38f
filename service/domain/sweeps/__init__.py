"""Hyperparameter sweeps, pure: the request body, which trials to run,
how a trial scores and when to stop it early."""
