"""Python client of the sayiir persistence service, with the generated contract in `sayiir_client.v1`."""
