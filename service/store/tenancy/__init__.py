"""Redis records of orgs and keys (`orgs`), the audit streams (`audit`),
and the notices that drop cached views in every process (`invalidation`)."""
