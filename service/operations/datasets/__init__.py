"""Datasets: upload and validation (`files`), the hand-off to the
upstream (`uploads`), and reconciling the upstream's files (`reconcile`)."""
