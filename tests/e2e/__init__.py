"""End-to-end: a real gRPC server (in-process on port 0, or the sayiir-server process) driven over the wire."""
