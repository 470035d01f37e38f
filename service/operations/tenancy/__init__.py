"""Orgs, policies and keys (`orgs`), and the one function that writes
an audit record (`audit`)."""
