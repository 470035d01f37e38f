"""Orgs, keys and policy, pure: roles and capabilities, the policy and
the model names it may allow, and the audit record."""
