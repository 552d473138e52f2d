// A TypeScript worker on the sayiir.persistence.v1 contract.
//
// It starts a one-task workflow, shows how the typed errors are read (ALREADY_EXISTS
// from PrepareRun, NOT_FOUND from LoadSnapshot), then runs the task the way every
// worker must (SPEC §9): find → claim → post-claim guard → run with a heartbeat →
// fenced save → release. Its last stdout line is a JSON summary.
//
//   node dist/worker.js [HOST:PORT]      (default: $SAYIIR_SERVER, else 127.0.0.1:50051)
//   SAYIIR_INSTANCE_ID picks the instance id (default: a fresh "node-<uuid>").
import { createHash, randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";

import { clone, create } from "@bufbuild/protobuf";
import { durationFromMs, timestampNow } from "@bufbuild/protobuf/wkt";
import { type Client, Code, createClient, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import { expectReason, persistenceError } from "./errors.js";
import { Health, HealthCheckResponse_ServingStatus } from "./gen/health/v1/health_pb.js";
import { ConflictPolicy } from "./gen/sayiir/persistence/v1/enums_pb.js";
import {
  type AvailableTask,
  CompletedStateSchema,
  TaskResultSchema,
  type WorkflowSnapshot,
  WorkflowSnapshotSchema,
} from "./gen/sayiir/persistence/v1/messages_pb.js";
import { Lifecycle, SignalStore, SnapshotStore, TaskClaimStore } from "./gen/sayiir/persistence/v1/service_pb.js";

/** The workflow this worker knows: one task, "greet", whose output is "node:" + its input. */
const WORKFLOW_NAME = "node-worker-demo";
const TASK_NAME = "greet";
const DEFINITION_HASH = sha256(WORKFLOW_NAME);
const TASK_ID = sha256(TASK_NAME);

const CLAIM_TTL_MS = 30_000;
/** Extend the lease well inside its ttl, so one slow round-trip never loses it. */
const HEARTBEAT_MS = CLAIM_TTL_MS / 3;
const POLLS = 50;
const POLL_PAUSE_MS = 100;

interface Stores {
  lifecycle: Client<typeof Lifecycle>;
  snapshots: Client<typeof SnapshotStore>;
  signals: Client<typeof SignalStore>;
  claims: Client<typeof TaskClaimStore>;
}

interface ClaimKey {
  instanceId: string;
  taskId: Uint8Array;
  workerId: string;
}

interface Summary {
  instance_id: string;
  completed: boolean;
  output: string | null;
  branches: { already_exists: boolean; not_found: boolean };
}

function sha256(text: string): Uint8Array {
  return new Uint8Array(createHash("sha256").update(text).digest());
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a).equals(Buffer.from(b));
}

/** The task's body: what this worker computes. */
async function greet(input: Uint8Array): Promise<Uint8Array> {
  return new TextEncoder().encode(`node:${new TextDecoder().decode(input)}`);
}

async function checkHealth(transport: Transport): Promise<void> {
  const { status } = await createClient(Health, transport).check({ service: "" });
  if (status !== HealthCheckResponse_ServingStatus.SERVING) {
    throw new Error(`server is not serving: ${HealthCheckResponse_ServingStatus[status]}`);
  }
}

async function startRun(stores: Stores, instanceId: string, input: string): Promise<void> {
  const { outcome } = await stores.lifecycle.prepareRun({
    instanceId,
    definitionHash: DEFINITION_HASH,
    input: new TextEncoder().encode(input),
    firstTask: { taskId: TASK_ID },
    conflictPolicy: ConflictPolicy.FAIL,
  });
  if (outcome?.outcome.case !== "fresh") {
    throw new Error(`PrepareRun did not start a fresh run: ${outcome?.outcome.case}`);
  }
}

/** A second PrepareRun with the same id and policy FAIL must be refused with RunConflict.already_exists. */
async function alreadyExistsBranch(stores: Stores, instanceId: string): Promise<boolean> {
  const error = await expectReason("ALREADY_EXISTS", () =>
    stores.lifecycle.prepareRun({
      instanceId,
      definitionHash: DEFINITION_HASH,
      firstTask: { taskId: TASK_ID },
      conflictPolicy: ConflictPolicy.FAIL,
    }),
  );
  const conflict = error.runConflict?.conflict;
  const taken = conflict?.case === "alreadyExists" && conflict.value.instanceId === instanceId;
  return error.code === Code.AlreadyExists && taken;
}

async function notFoundBranch(stores: Stores, instanceId: string): Promise<boolean> {
  const error = await expectReason("NOT_FOUND", () => stores.snapshots.loadSnapshot({ instanceId }));
  return error.code === Code.NotFound;
}

/** The instance's snapshot, or undefined once it was deleted (ErrorInfo reason NOT_FOUND). */
async function loadIfPresent(stores: Stores, instanceId: string): Promise<WorkflowSnapshot | undefined> {
  try {
    return (await stores.snapshots.loadSnapshot({ instanceId })).snapshot;
  } catch (thrown) {
    if (persistenceError(thrown).reason === "NOT_FOUND") {
      return undefined;
    }
    throw thrown;
  }
}

/** The post-claim guard: the claim says nothing about whether the task is still the current one. */
async function stillCurrent(stores: Stores, task: AvailableTask): Promise<WorkflowSnapshot | undefined> {
  const snapshot = await loadIfPresent(stores, task.instanceId);
  if (snapshot?.state.case !== "inProgress") {
    return undefined;
  }
  const { position, completedTasks } = snapshot.state.value;
  const atTask = position?.position.case === "atTask" && sameBytes(position.position.value.taskId, task.taskId);
  if (!atTask || completedTasks.some((result) => sameBytes(result.taskId, task.taskId))) {
    return undefined;
  }
  const { controlSignal } = await stores.signals.checkControlSignals({
    instanceId: task.instanceId,
    interruptedAtTask: task.taskId,
  });
  return controlSignal === undefined ? snapshot : undefined;
}

/** Runs the task while extending its claim every HEARTBEAT_MS. */
async function withHeartbeat<T>(stores: Stores, key: ClaimKey, run: () => Promise<T>): Promise<T> {
  const beat = setInterval(() => {
    // A failed beat needs no handling here: a lost lease shows as saved=false at the fenced save.
    stores.claims.extendTaskClaim({ ...key, ttl: durationFromMs(CLAIM_TTL_MS) }).catch(() => undefined);
  }, HEARTBEAT_MS);
  try {
    return await run();
  } finally {
    clearInterval(beat);
  }
}

/** Records the output, then completes the workflow with it; both writes fenced by the claim. */
async function completeFenced(
  stores: Stores,
  snapshot: WorkflowSnapshot,
  key: ClaimKey,
  output: Uint8Array,
): Promise<boolean> {
  const recorded = clone(WorkflowSnapshotSchema, snapshot);
  if (recorded.state.case !== "inProgress") {
    return false;
  }
  recorded.state.value.completedTasks.push(create(TaskResultSchema, { taskId: key.taskId, output }));
  recorded.state.value.lastCompletedTaskId = key.taskId;
  recorded.updatedAt = timestampNow();
  const completed = clone(WorkflowSnapshotSchema, recorded);
  completed.state = { case: "completed", value: create(CompletedStateSchema, { finalOutput: output }) };
  completed.taskDeadline = undefined;
  const { taskId, workerId } = key;
  for (const next of [recorded, completed]) {
    const { saved } = await stores.claims.saveSnapshotFenced({ snapshot: next, taskId, workerId });
    if (!saved) {
      return false; // the lease was lost: the successor owns the instance now, drop the result
    }
  }
  return true;
}

/** Claims and runs one available task; returns its output, or undefined when it was not ours to run. */
async function runTask(stores: Stores, task: AvailableTask, workerId: string): Promise<Uint8Array | undefined> {
  const key: ClaimKey = { instanceId: task.instanceId, taskId: task.taskId, workerId };
  const { claim } = await stores.claims.claimTask({ ...key, ttl: durationFromMs(CLAIM_TTL_MS) });
  if (claim === undefined) {
    return undefined; // another worker holds it
  }
  try {
    const snapshot = await stillCurrent(stores, task);
    if (snapshot === undefined) {
      return undefined;
    }
    const output = await withHeartbeat(stores, key, () => greet(task.input));
    return (await completeFenced(stores, snapshot, key, output)) ? output : undefined;
  } finally {
    await releaseClaim(stores, key);
  }
}

/** Releases a claim; one that already lapsed (NOT_FOUND) or passed to another worker (CLAIM_LOST) needs nothing. */
async function releaseClaim(stores: Stores, key: ClaimKey): Promise<void> {
  try {
    await stores.claims.releaseTaskClaim(key);
  } catch (thrown) {
    const { reason } = persistenceError(thrown);
    if (reason !== "NOT_FOUND" && reason !== "CLAIM_LOST") {
      throw thrown;
    }
  }
}

/** Polls for tasks of this worker's workflow and runs them until `instanceId` is done. */
async function work(stores: Stores, instanceId: string, workerId: string): Promise<Uint8Array | undefined> {
  for (let poll = 0; poll < POLLS; poll++) {
    const { tasks } = await stores.claims.findAvailableTasks({ workerId, limit: 10 });
    // A worker runs only the workflows it has code for: here, one definition.
    for (const task of tasks.filter((t) => sameBytes(t.definitionHash, DEFINITION_HASH))) {
      const output = await runTask(stores, task, workerId);
      if (output !== undefined && task.instanceId === instanceId) {
        return output;
      }
    }
    await sleep(POLL_PAUSE_MS);
  }
  return undefined;
}

async function main(): Promise<number> {
  const server = process.argv[2] ?? process.env.SAYIIR_SERVER ?? "127.0.0.1:50051";
  const instanceId = process.env.SAYIIR_INSTANCE_ID ?? `node-${randomUUID()}`;
  const workerId = `node-worker-${process.pid}`;
  const transport = createGrpcTransport({ baseUrl: `http://${server}` });
  const stores: Stores = {
    lifecycle: createClient(Lifecycle, transport),
    snapshots: createClient(SnapshotStore, transport),
    signals: createClient(SignalStore, transport),
    claims: createClient(TaskClaimStore, transport),
  };

  await checkHealth(transport);
  await startRun(stores, instanceId, "hello from TypeScript");
  const alreadyExists = await alreadyExistsBranch(stores, instanceId);
  const notFound = await notFoundBranch(stores, `${instanceId}-missing`);
  const output = await work(stores, instanceId, workerId);

  const summary: Summary = {
    instance_id: instanceId,
    completed: output !== undefined,
    output: output === undefined ? null : new TextDecoder().decode(output),
    branches: { already_exists: alreadyExists, not_found: notFound },
  };
  console.log(JSON.stringify(summary));
  return summary.completed && alreadyExists && notFound ? 0 : 1;
}

process.exitCode = await main();
