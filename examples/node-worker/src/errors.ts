// Typed errors of the sayiir.persistence.v1 contract, read from the status details.
//
// The server sends a google.rpc.Status in the `grpc-status-details-bin` trailer.
// Connect decodes it into ConnectError.details; findDetails() unpacks the Any
// entries of the type asked for and skips the others (forward compatibility).
// Nothing here looks at the message text.
import { Code, ConnectError } from "@connectrpc/connect";

import { type ErrorInfo, ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { type RunConflict, RunConflictSchema } from "./gen/sayiir/persistence/v1/error_details_pb.js";

/** The ErrorInfo domain of every error this service raises. */
export const ERROR_DOMAIN = "persistence.sayiir.dev";

/** An error status of the persistence service, with its typed details unpacked. */
export interface PersistenceError {
  /** The gRPC status code. */
  code: Code;
  /** ErrorInfo.reason: an ErrorReason value name without "ERROR_REASON_", e.g. "NOT_FOUND". */
  reason: string;
  /** ErrorInfo.metadata, e.g. {"field": "task_id"} for INVALID_ARGUMENT. */
  metadata: Record<string, string>;
  /** The RunConflict detail that PrepareRun errors carry; absent for other RPCs. */
  runConflict: RunConflict | undefined;
}

/**
 * Returns the typed error behind a failed call, or rethrows what is not one of ours
 * (a transport failure, or an error status without our ErrorInfo).
 */
export function persistenceError(thrown: unknown): PersistenceError {
  const error = ConnectError.from(thrown);
  const info: ErrorInfo | undefined = error.findDetails(ErrorInfoSchema).find((d) => d.domain === ERROR_DOMAIN);
  if (info === undefined) {
    throw error;
  }
  return {
    code: error.code,
    reason: info.reason,
    metadata: info.metadata,
    runConflict: error.findDetails(RunConflictSchema)[0],
  };
}

/**
 * Runs `call` and returns its error when it fails with ErrorInfo `reason`; any
 * other outcome (success, another reason, a transport failure) is a bug here.
 */
export async function expectReason(reason: string, call: () => Promise<unknown>): Promise<PersistenceError> {
  try {
    await call();
  } catch (thrown) {
    const error = persistenceError(thrown);
    if (error.reason !== reason) {
      throw new Error(`expected reason ${reason}, got ${error.reason} (${Code[error.code]})`, { cause: thrown });
    }
    return error;
  }
  throw new Error(`expected the call to fail with reason ${reason}, but it succeeded`);
}
