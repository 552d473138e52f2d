"""Workers in other languages, run against a real server."""
