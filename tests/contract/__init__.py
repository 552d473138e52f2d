"""The one contract suite (SPEC.md §3–§7), run against every backend and transport."""
