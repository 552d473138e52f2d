// The worker path (docs/behaviour.md WORKER-*): claim through ClaimAvailableTasks, run with a
// heartbeat, complete with a fenced save and CompleteTask.
package main

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	persistencev1 "sayiir.dev/go-worker/gen/sayiir/persistence/v1"
)

// taskInput reads the task's input (SIZE-1.1: it travels once, inside its snapshot): the initial
// input before any task completed, else the output of the last completed task.
func taskInput(task *persistencev1.AvailableTask) []byte {
	snapshot := task.GetSnapshot()
	if !task.GetInputInSnapshot() || snapshot == nil {
		return task.GetInput()
	}
	running := snapshot.GetInProgress()
	if running == nil || running.LastCompletedTaskId == nil {
		return snapshot.GetInitialInput()
	}
	for _, result := range running.GetCompletedTasks() {
		if bytes.Equal(result.GetTaskId(), running.GetLastCompletedTaskId()) {
			return result.GetOutput()
		}
	}
	return nil
}

// withHeartbeat runs the task while extending its claim every heartbeat.
func withHeartbeat(ctx context.Context, s stores, task *persistencev1.AvailableTask, workerID string,
	run func() []byte) []byte {
	beating, stop := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		ticker := time.NewTicker(heartbeat)
		defer ticker.Stop()
		for {
			select {
			case <-beating.Done():
				return
			case <-ticker.C:
				// A failed beat needs no handling here: a lost lease shows as saved=false at the fenced save.
				_, _ = s.claims.ExtendTaskClaim(beating, &persistencev1.ExtendTaskClaimRequest{
					InstanceId: task.GetInstanceId(),
					TaskId:     task.GetTaskId(),
					WorkerId:   workerID,
					Ttl:        durationpb.New(claimTTL),
				})
			}
		}
	}()
	defer func() {
		stop()
		<-stopped
	}()
	return run()
}

// recordedSnapshot is the snapshot with the task's output recorded: still InProgress, so
// LoadTaskResult keeps answering later.
func recordedSnapshot(snapshot *persistencev1.WorkflowSnapshot, taskID, output []byte) *persistencev1.WorkflowSnapshot {
	recorded := proto.Clone(snapshot).(*persistencev1.WorkflowSnapshot)
	if running := recorded.GetInProgress(); running != nil {
		running.CompletedTasks = append(running.CompletedTasks, &persistencev1.TaskResult{TaskId: taskID, Output: output})
		running.LastCompletedTaskId = taskID
	}
	recorded.UpdatedAt = timestamppb.Now()
	return recorded
}

// completedSnapshot is the workflow completed with the last task's output.
func completedSnapshot(recorded *persistencev1.WorkflowSnapshot, output []byte) *persistencev1.WorkflowSnapshot {
	done := proto.Clone(recorded).(*persistencev1.WorkflowSnapshot)
	done.State = &persistencev1.WorkflowSnapshot_Completed{
		Completed: &persistencev1.CompletedState{FinalOutput: output},
	}
	done.TaskDeadline = nil
	return done
}

// runTask runs one claimed task; it returns its output, or nil when the lease was lost before it completed.
func runTask(ctx context.Context, s stores, claimed *persistencev1.ClaimedTask, workerID string) ([]byte, error) {
	task := claimed.GetTask()
	if task.GetSnapshot() == nil {
		return nil, nil
	}
	output := withHeartbeat(ctx, s, task, workerID, func() []byte { return greet(taskInput(task)) })
	// The last task: record its output (a fenced save), then complete the workflow and end the claim at once.
	// A task with a successor would send one CompleteTask: its output recorded and the next position.
	recorded := recordedSnapshot(task.GetSnapshot(), task.GetTaskId(), output)
	first, err := s.claims.SaveSnapshotFenced(ctx, &persistencev1.SaveSnapshotFencedRequest{
		Snapshot: recorded, TaskId: task.GetTaskId(), WorkerId: workerID,
	})
	if err != nil {
		return nil, fmt.Errorf("SaveSnapshotFenced: %w", err)
	}
	if !first.GetSaved() {
		return nil, nil // the lease was lost: the successor owns the instance now, drop the result
	}
	completed, err := s.claims.CompleteTask(ctx, &persistencev1.CompleteTaskRequest{
		Snapshot: completedSnapshot(recorded, output), TaskId: task.GetTaskId(), WorkerId: workerID,
	})
	if err != nil {
		return nil, fmt.Errorf("CompleteTask: %w", err)
	}
	if !completed.GetSaved() {
		return nil, nil
	}
	return output, nil
}

// work claims tasks of this worker's workflow (waiting for them) and runs them until instanceID is
// done; nil output when it was not done within claimRounds calls.
func work(ctx context.Context, s stores, instanceID, workerID string) ([]byte, error) {
	for round := 0; round < claimRounds; round++ {
		response, err := s.claims.ClaimAvailableTasks(ctx, &persistencev1.ClaimAvailableTasksRequest{
			WorkerId: workerID,
			Limit:    10,
			Ttl:      durationpb.New(claimTTL),
			// A worker runs only the workflows it has code for: here, one definition.
			DefinitionHashes: [][]byte{definitionHash},
			Wait:             durationpb.New(claimWait),
		})
		if err != nil {
			return nil, fmt.Errorf("ClaimAvailableTasks: %w", err)
		}
		for _, claimed := range response.GetTasks() {
			output, err := runTask(ctx, s, claimed, workerID)
			if err != nil {
				return nil, err
			}
			if output != nil && claimed.GetTask().GetInstanceId() == instanceID {
				return output, nil
			}
		}
	}
	return nil, nil
}
