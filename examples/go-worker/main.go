// A Go worker on the sayiir.persistence.v1 contract.
//
// It starts a one-task workflow, shows how the typed errors are read (ALREADY_EXISTS
// from PrepareRun, NOT_FOUND from LoadSnapshot), then runs the task through the
// worker path (docs/behaviour.md WORKER-*): ClaimAvailableTasks (found, claimed and
// guarded by the server, only this worker's definition, waiting for work) → run with
// a heartbeat → CompleteTask (fenced save and release at once). Its last stdout line
// is a JSON summary.
//
//	go-worker [HOST:PORT]      (default: $SAYIIR_SERVER, else 127.0.0.1:50051)
//	SAYIIR_INSTANCE_ID picks the instance id (default: a fresh "go-<random hex>").
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	persistencev1 "sayiir.dev/go-worker/gen/sayiir/persistence/v1"
)

// The workflow this worker knows: one task, "greet", whose output is "go:" + its input.
const (
	workflowName = "go-worker-demo"
	taskName     = "greet"
)

var (
	definitionHash = sha256Of(workflowName)
	taskID         = sha256Of(taskName)
)

const (
	claimTTL = 30 * time.Second
	// heartbeat extends the lease well inside its ttl, so one slow round-trip never loses it.
	heartbeat = claimTTL / 3
	// claimWait is how long each ClaimAvailableTasks waits for work before answering empty.
	claimWait = time.Second
	// claimRounds bounds the ClaimAvailableTasks calls before the demo gives up on its instance.
	claimRounds = 20
	// runTimeout bounds the whole demo, so a server that stops answering cannot hang it.
	runTimeout = time.Minute
)

// stores are the clients of the services this worker calls.
type stores struct {
	lifecycle persistencev1.LifecycleClient
	snapshots persistencev1.SnapshotStoreClient
	claims    persistencev1.TaskClaimStoreClient
}

type branches struct {
	AlreadyExists bool `json:"already_exists"`
	NotFound      bool `json:"not_found"`
}

// summary is the JSON line the worker prints last.
type summary struct {
	InstanceID string   `json:"instance_id"`
	Completed  bool     `json:"completed"`
	Output     *string  `json:"output"`
	Branches   branches `json:"branches"`
}

func sha256Of(text string) []byte {
	sum := sha256.Sum256([]byte(text))
	return sum[:]
}

// greet is the task's body: what this worker computes.
func greet(input []byte) []byte {
	return append([]byte("go:"), input...)
}

func checkHealth(ctx context.Context, conn *grpc.ClientConn) error {
	response, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: ""})
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	if response.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("server is not serving: %s", response.GetStatus())
	}
	return nil
}

func startRun(ctx context.Context, s stores, instanceID string, input string) error {
	response, err := s.lifecycle.PrepareRun(ctx, &persistencev1.PrepareRunRequest{
		InstanceId:     instanceID,
		DefinitionHash: definitionHash,
		Input:          []byte(input),
		FirstTask:      &persistencev1.FirstTask{TaskId: taskID},
		ConflictPolicy: persistencev1.ConflictPolicy_CONFLICT_POLICY_FAIL,
	})
	if err != nil {
		return fmt.Errorf("PrepareRun: %w", err)
	}
	if response.GetOutcome().GetFresh() == nil {
		return fmt.Errorf("PrepareRun did not start a fresh run: %v", response.GetOutcome())
	}
	return nil
}

// alreadyExistsBranch: a second PrepareRun with the same id and policy FAIL must be refused with
// RunConflict.already_exists.
func alreadyExistsBranch(ctx context.Context, s stores, instanceID string) (bool, error) {
	typed, err := expectReason("ALREADY_EXISTS", func() error {
		_, err := s.lifecycle.PrepareRun(ctx, &persistencev1.PrepareRunRequest{
			InstanceId:     instanceID,
			DefinitionHash: definitionHash,
			FirstTask:      &persistencev1.FirstTask{TaskId: taskID},
			ConflictPolicy: persistencev1.ConflictPolicy_CONFLICT_POLICY_FAIL,
		})
		return err
	})
	if err != nil {
		return false, err
	}
	taken := typed.runConflict.GetAlreadyExists().GetInstanceId() == instanceID
	return typed.code == codes.AlreadyExists && taken, nil
}

func notFoundBranch(ctx context.Context, s stores, instanceID string) (bool, error) {
	typed, err := expectReason("NOT_FOUND", func() error {
		_, err := s.snapshots.LoadSnapshot(ctx, &persistencev1.LoadSnapshotRequest{InstanceId: instanceID})
		return err
	})
	if err != nil {
		return false, err
	}
	return typed.code == codes.NotFound, nil
}

func main() {
	server := "127.0.0.1:50051"
	if len(os.Args) > 1 {
		server = os.Args[1]
	} else if fromEnv := os.Getenv("SAYIIR_SERVER"); fromEnv != "" {
		server = fromEnv
	}
	instanceID := os.Getenv("SAYIIR_INSTANCE_ID")
	if instanceID == "" {
		instanceID = "go-" + randomHex()
	}
	workerID := fmt.Sprintf("go-worker-%d", os.Getpid())

	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	// grpc.Dial and WithInsecure (plaintext, as the server's default listener) exist in every gRPC-Go
	// from Debian's 1.33 to the newest; grpc.NewClient and credentials/insecure do not.
	conn, err := grpc.Dial(server, grpc.WithInsecure())
	if err != nil {
		log.Fatalf("dial %s: %v", server, err)
	}
	defer conn.Close()
	s := stores{
		lifecycle: persistencev1.NewLifecycleClient(conn),
		snapshots: persistencev1.NewSnapshotStoreClient(conn),
		claims:    persistencev1.NewTaskClaimStoreClient(conn),
	}

	result, err := demo(ctx, conn, s, instanceID, workerID)
	if err != nil {
		log.Fatal(err)
	}
	line, err := json.Marshal(result)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(line))
	if !result.Completed || !result.Branches.AlreadyExists || !result.Branches.NotFound {
		os.Exit(1)
	}
}

// demo runs every step the worker shows, in order, and sums them up.
func demo(ctx context.Context, conn *grpc.ClientConn, s stores, instanceID, workerID string) (summary, error) {
	result := summary{InstanceID: instanceID}
	if err := checkHealth(ctx, conn); err != nil {
		return result, err
	}
	if err := startRun(ctx, s, instanceID, "hello from Go"); err != nil {
		return result, err
	}
	var err error
	if result.Branches.AlreadyExists, err = alreadyExistsBranch(ctx, s, instanceID); err != nil {
		return result, err
	}
	if result.Branches.NotFound, err = notFoundBranch(ctx, s, instanceID+"-missing"); err != nil {
		return result, err
	}
	output, err := work(ctx, s, instanceID, workerID)
	if err != nil {
		return result, err
	}
	if output != nil {
		text := string(output)
		result.Completed, result.Output = true, &text
	}
	return result, nil
}

func randomHex() string {
	var bytes [16]byte
	if _, err := rand.Read(bytes[:]); err != nil {
		log.Fatal(err)
	}
	return hex.EncodeToString(bytes[:])
}
