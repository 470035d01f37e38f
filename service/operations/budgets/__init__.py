"""Budgets: reserving a call's or a job's worst case before it is spent, settling it with what
was spent (`charges`), alerts, and the reports of an org's spending (`reports`)."""
