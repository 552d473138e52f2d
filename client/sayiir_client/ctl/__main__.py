"""`python -m sayiir_client.ctl`: the same as the `sayiirctl` console script."""

import sys

from sayiir_client.ctl.main import main

sys.exit(main())
