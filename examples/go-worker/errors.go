// Typed errors of the sayiir.persistence.v1 contract, read from the status details.
//
// The server sends a google.rpc.Status in the grpc-status-details-bin trailer.
// status.FromError gives it back and Details() unpacks its Any entries into the
// message types this binary links (errdetails.ErrorInfo, and RunConflict, which
// importing the generated package registers); an entry of a type it does not know
// comes back as an error value and is skipped (forward compatibility). Nothing
// here looks at the message text.
package main

import (
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	persistencev1 "sayiir.dev/go-worker/gen/sayiir/persistence/v1"
)

// errorDomain is the ErrorInfo domain of every error this service raises.
const errorDomain = "persistence.sayiir.dev"

// persistenceError is an error status of the persistence service, with its typed details unpacked.
type persistenceError struct {
	// code is the gRPC status code.
	code codes.Code
	// reason is ErrorInfo.reason: an ErrorReason value name without "ERROR_REASON_", e.g. "NOT_FOUND".
	reason string
	// metadata is ErrorInfo.metadata, e.g. {"field": "task_id"} for INVALID_ARGUMENT.
	metadata map[string]string
	// runConflict is the RunConflict detail that PrepareRun errors carry; nil for other RPCs.
	runConflict *persistencev1.RunConflict
}

// asPersistenceError returns the typed error behind a failed call, or false for what is not one
// of ours (a transport failure, or an error status without our ErrorInfo).
func asPersistenceError(err error) (*persistenceError, bool) {
	st, ok := status.FromError(err)
	if !ok {
		return nil, false
	}
	typed := &persistenceError{code: st.Code()}
	ours := false
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			if d.GetDomain() == errorDomain {
				typed.reason, typed.metadata, ours = d.GetReason(), d.GetMetadata(), true
			}
		case *persistencev1.RunConflict:
			typed.runConflict = d
		}
	}
	return typed, ours
}

// expectReason runs call and returns its error when it fails with ErrorInfo reason; any other
// outcome (success, another reason, a transport failure) is a bug here.
func expectReason(reason string, call func() error) (*persistenceError, error) {
	err := call()
	if err == nil {
		return nil, fmt.Errorf("expected the call to fail with reason %s, but it succeeded", reason)
	}
	typed, ours := asPersistenceError(err)
	if !ours {
		return nil, fmt.Errorf("expected reason %s: %w", reason, err)
	}
	if typed.reason != reason {
		return nil, fmt.Errorf("expected reason %s, got %s (%s): %w", reason, typed.reason, typed.code, err)
	}
	return typed, nil
}
