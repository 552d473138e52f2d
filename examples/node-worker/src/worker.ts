// A TypeScript worker on the sayiir.persistence.v1 contract.
//
// It starts a one-task workflow, shows how the typed errors are read (ALREADY_EXISTS
// from PrepareRun, NOT_FOUND from LoadSnapshot), then runs the task through the
// worker path (docs/behaviour.md WORKER-*): ClaimAvailableTasks (found, claimed and
// guarded by the server, only this worker's definition, waiting for work) → run with
// a heartbeat → CompleteTask (fenced save and release at once). Its last stdout line
// is a JSON summary.
//
//   node dist/worker.js [HOST:PORT]      (default: $SAYIIR_SERVER, else 127.0.0.1:50051)
//   SAYIIR_INSTANCE_ID picks the instance id (default: a fresh "node-<uuid>").
import { createHash, randomUUID } from "node:crypto";

import { clone, create } from "@bufbuild/protobuf";
import { durationFromMs, timestampNow } from "@bufbuild/protobuf/wkt";
import { type Client, Code, createClient, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import { expectReason } from "./errors.js";
import { Health, HealthCheckResponse_ServingStatus } from "./gen/health/v1/health_pb.js";
import { ConflictPolicy } from "./gen/sayiir/persistence/v1/enums_pb.js";
import {
  type AvailableTask,
  type ClaimedTask,
  CompletedStateSchema,
  TaskResultSchema,
  type WorkflowSnapshot,
  WorkflowSnapshotSchema,
} from "./gen/sayiir/persistence/v1/messages_pb.js";
import { Lifecycle, SnapshotStore, TaskClaimStore } from "./gen/sayiir/persistence/v1/service_pb.js";

/** The workflow this worker knows: one task, "greet", whose output is "node:" + its input. */
const WORKFLOW_NAME = "node-worker-demo";
const TASK_NAME = "greet";
const DEFINITION_HASH = sha256(WORKFLOW_NAME);
const TASK_ID = sha256(TASK_NAME);

const CLAIM_TTL_MS = 30_000;
/** Extend the lease well inside its ttl, so one slow round-trip never loses it. */
const HEARTBEAT_MS = CLAIM_TTL_MS / 3;
/** Each ClaimAvailableTasks waits this long for work before answering empty. */
const CLAIM_WAIT_MS = 1_000;
const CLAIMS = 20;

interface Stores {
  lifecycle: Client<typeof Lifecycle>;
  snapshots: Client<typeof SnapshotStore>;
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

/** SIZE-1.1: the task's input travels once, inside its snapshot: the initial input before any task completed,
 * else the output of the last completed task. */
function taskInput(task: AvailableTask): Uint8Array {
  const snapshot = task.snapshot;
  if (!task.inputInSnapshot || snapshot === undefined) {
    return task.input;
  }
  if (snapshot.state.case !== "inProgress" || snapshot.state.value.lastCompletedTaskId === undefined) {
    return snapshot.initialInput ?? new Uint8Array();
  }
  const last = snapshot.state.value.lastCompletedTaskId;
  return snapshot.state.value.completedTasks.find((result) => sameBytes(result.taskId, last))?.output ?? new Uint8Array();
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

/** The snapshot with the task's output recorded: still InProgress, so LoadTaskResult keeps answering later. */
function recordedSnapshot(snapshot: WorkflowSnapshot, taskId: Uint8Array, output: Uint8Array): WorkflowSnapshot {
  const recorded = clone(WorkflowSnapshotSchema, snapshot);
  if (recorded.state.case === "inProgress") {
    recorded.state.value.completedTasks.push(create(TaskResultSchema, { taskId, output }));
    recorded.state.value.lastCompletedTaskId = taskId;
  }
  recorded.updatedAt = timestampNow();
  return recorded;
}

/** The workflow completed with the last task's output. */
function completedSnapshot(recorded: WorkflowSnapshot, output: Uint8Array): WorkflowSnapshot {
  const done = clone(WorkflowSnapshotSchema, recorded);
  done.state = { case: "completed", value: create(CompletedStateSchema, { finalOutput: output }) };
  done.taskDeadline = undefined;
  return done;
}

/** Runs one claimed task; returns its output, or undefined when the lease was lost before it completed. */
async function runTask(stores: Stores, claimed: ClaimedTask, workerId: string): Promise<Uint8Array | undefined> {
  const task = claimed.task;
  if (task?.snapshot === undefined) {
    return undefined;
  }
  const key: ClaimKey = { instanceId: task.instanceId, taskId: task.taskId, workerId };
  const output = await withHeartbeat(stores, key, () => greet(taskInput(task)));
  // The last task: record its output (a fenced save), then complete the workflow and end the claim at once.
  // A task with a successor would send one CompleteTask: its output recorded and the next position.
  const recorded = recordedSnapshot(task.snapshot, task.taskId, output);
  const first = await stores.claims.saveSnapshotFenced({ snapshot: recorded, taskId: task.taskId, workerId });
  if (!first.saved) {
    return undefined; // the lease was lost: the successor owns the instance now, drop the result
  }
  const snapshot = completedSnapshot(recorded, output);
  const { saved } = await stores.claims.completeTask({ snapshot, taskId: task.taskId, workerId });
  return saved ? output : undefined;
}

/** Claims tasks of this worker's workflow (waiting for them) and runs them until `instanceId` is done. */
async function work(stores: Stores, instanceId: string, workerId: string): Promise<Uint8Array | undefined> {
  for (let round = 0; round < CLAIMS; round++) {
    const { tasks } = await stores.claims.claimAvailableTasks({
      workerId,
      limit: 10,
      ttl: durationFromMs(CLAIM_TTL_MS),
      // A worker runs only the workflows it has code for: here, one definition.
      definitionHashes: [DEFINITION_HASH],
      wait: durationFromMs(CLAIM_WAIT_MS),
    });
    for (const claimed of tasks) {
      const output = await runTask(stores, claimed, workerId);
      if (output !== undefined && claimed.task?.instanceId === instanceId) {
        return output;
      }
    }
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
