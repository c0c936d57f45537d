"""Durable work: asynchronous writes run by workers (DBOS workflows)."""
