"""The one contract suite (docs/behaviour.md SNAP to RUN), run against every backend and transport."""
