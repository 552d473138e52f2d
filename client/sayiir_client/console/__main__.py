"""`python -m sayiir_client.console`."""

from sayiir_client.console.cli import main

raise SystemExit(main())
