"""Whether the console's token may act, found out without acting.

The probe is a ClearSignal with no instance id and no kind: a request every server refuses before it reaches
storage. A reader token gets PERMISSION_DENIED (ERR-5.2: the role check comes first, whatever the request); a
token that may write gets INVALID_ARGUMENT for the empty field (ID-3.1), and nothing changes. The answer is kept
for a while, since the server re-reads its token file on SIGHUP; a PERMISSION_DENIED on an action ends the
wait at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from sayiir_client import AccessDeniedError, AsyncPersistenceClient, InvalidArgumentError
from sayiir_client.v1 import enums_pb2 as enums

PROBE_INTERVAL_SECONDS = 60.0


@dataclass
class Access:
    """What the console lets its user do: everything, unless read_only (the flag) or the token is a reader."""

    client: AsyncPersistenceClient
    read_only: bool
    """--read-only: never show actions, whatever the token may do."""
    clock: Callable[[], float] = time.monotonic
    _may_write: bool | None = None
    _probed_at: float = 0.0

    async def can_act(self) -> bool:
        if self.read_only:
            return False
        if self._may_write is None or self.clock() - self._probed_at >= PROBE_INTERVAL_SECONDS:
            self._may_write = await self._probe()
            self._probed_at = self.clock()
        return self._may_write

    def denied(self) -> None:
        """An action was refused with PERMISSION_DENIED: hide the actions from now on (until the next probe)."""
        self._may_write = False
        self._probed_at = self.clock()

    @property
    def role(self) -> str:
        """What the pages say about the console's rights."""
        if self.read_only:
            return "read-only (--read-only)"
        if self._may_write is False:
            return "read-only (reader token)"
        return "read and act"

    async def _probe(self) -> bool:
        try:
            await self.client.clear_signal("", enums.SIGNAL_KIND_UNSPECIFIED)
        except InvalidArgumentError:
            return True
        except AccessDeniedError as error:
            if error.code == grpc.StatusCode.PERMISSION_DENIED:
                return False
            raise
        return True
