"""Evals from the caller's side: create, read, rename and delete evals (`evals`)."""
