"""`make bench`: throughput, latency and scaling of sayiir-server, each against the transport's own ceiling."""
