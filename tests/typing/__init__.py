"""Files checked by mypy --strict only (make typecheck), never run."""
