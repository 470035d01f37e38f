"""RQ entry points: thin tasks that call `service.operations`."""
