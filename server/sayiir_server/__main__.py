"""`python -m sayiir_server`: the same as the `sayiir-server` command."""

from sayiir_server.cli import main

raise SystemExit(main())
