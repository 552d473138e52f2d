"""Runnable examples of workers using the persistence service (Python; see node-worker/ for TypeScript)."""
