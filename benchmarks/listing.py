"""ListWorkflows latency as the population grows: one filtered page, walking the listing page by page."""

from __future__ import annotations

import time

import grpc

from benchmarks.measure import Measurement
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_client.v1 import service_pb2_grpc as rpc

LIST_PAGE_SIZE = 100
LIST_STATE = enums.WORKFLOW_STATE_IN_PROGRESS
_WARMUP_CALLS = 1


def list_label(in_progress: int, completed: int) -> str:
    label = f"ListWorkflows(InProgress, {LIST_PAGE_SIZE} per page) @ {in_progress:,} InProgress"
    return label + (f" + {completed:,} Completed" if completed else "")


async def list_latency(channel: grpc.aio.Channel, calls: int, budget_seconds: float) -> Measurement:
    """Sequential pages of ListWorkflows(states=[InProgress], newest first) from one client.

    Each call asks for the page after the previous one (its next_page_token), back to the first page after the
    last, so deep pages (a cursor far into the index) are measured as well as the first.
    """
    snapshots = rpc.SnapshotStoreStub(channel)
    first = rr.ListWorkflowsRequest(states=[LIST_STATE], page_size=LIST_PAGE_SIZE)
    token = ""
    for _ in range(_WARMUP_CALLS):
        await snapshots.ListWorkflows(first)
    latencies: list[float] = []
    deadline = time.perf_counter() + budget_seconds
    while len(latencies) < calls and (len(latencies) < 3 or time.perf_counter() < deadline):
        request = rr.ListWorkflowsRequest(states=[LIST_STATE], page_size=LIST_PAGE_SIZE, page_token=token)
        started = time.perf_counter()
        response = await snapshots.ListWorkflows(request)
        latencies.append(time.perf_counter() - started)
        if len(response.workflows) != LIST_PAGE_SIZE and response.next_page_token:
            raise RuntimeError(f"ListWorkflows returned {len(response.workflows)} summaries and more pages")
        token = response.next_page_token
    return Measurement(tuple(latencies), sum(latencies))
