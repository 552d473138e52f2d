"""`python -m sayiir_client.conformance`: the same as the `sayiir-conformance` command."""

import sys

from sayiir_client.conformance.cli import main

sys.exit(main())
