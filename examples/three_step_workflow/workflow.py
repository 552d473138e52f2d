"""The workflow definition: three steps, each a pure function from the previous output to the next."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sayiir_client import DefinitionHash, TaskId
from sayiir_client.v1 import messages_pb2 as pb

DEFINITION = DefinitionHash.from_name("examples/three-step-workflow/v1")
"""Identifies this definition's shape: a worker only runs tasks of definitions it knows."""


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[bytes], bytes]
    tags: Sequence[str] = ()
    """A worker must carry all of these tags to be offered the step."""

    @property
    def task_id(self) -> TaskId:
        return TaskId.from_name(f"{DEFINITION.hex()}/{self.name}")


def parse(text: bytes) -> bytes:
    """ "3,1,2" → [3, 1, 2]."""
    return json.dumps([int(part) for part in text.decode().split(",")]).encode()


def square(numbers: bytes) -> bytes:
    """[3, 1, 2] → [9, 1, 4]."""
    return json.dumps([number * number for number in json.loads(numbers)]).encode()


def total(numbers: bytes) -> bytes:
    """[9, 1, 4] → 14."""
    return str(sum(json.loads(numbers))).encode()


STEPS = (Step("parse", parse), Step("square", square, tags=("heavy",)), Step("total", total))
STEPS_BY_TASK_ID: dict[bytes, Step] = {step.task_id: step for step in STEPS}


def step_of(task_id: bytes) -> Step | None:
    """The step a task id names; None for a task of another definition."""
    return STEPS_BY_TASK_ID.get(task_id)


def next_step(step: Step) -> Step | None:
    index = STEPS.index(step)
    return STEPS[index + 1] if index + 1 < len(STEPS) else None


def first_task() -> pb.FirstTask:
    first = STEPS[0]
    return pb.FirstTask(task_id=first.task_id, tags=first.tags)


def expected_output(text: bytes) -> bytes:
    """What a run started with `text` completes with."""
    output = text
    for step in STEPS:
        output = step.run(output)
    return output
