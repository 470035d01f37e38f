"""Spending limits: the policy's `budgets`, the period they reset on, the scopes a call is
charged to and the worst case a call may cost. Pure; the counters live in `store.budgets`."""
