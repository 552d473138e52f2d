"""Runnable examples of workers using the persistence service (Python; node-worker/ is TypeScript, go-worker/ Go)."""
