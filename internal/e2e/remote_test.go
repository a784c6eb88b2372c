package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/internal/proctest"
	"github.com/droverhq/drover/pkg/task"
)

const remoteKey = "e2e-remote-runner-key-0123456789"

// remoteRunner starts `drover runner --server url` as name: a process
// whose only way to Drover is the dispatch API (no queue, bucket or store
// variables at all).
func remoteRunner(t *testing.T, name, url, key string, lease time.Duration, procs *[]*proctest.Proc) *proctest.Proc {
	t.Helper()
	p := proctest.Start(t, name, droverBin, []string{"runner", "--server", url}, []string{
		"DROVER_API_KEY=" + key, "DROVER_RUNNER_NAME=" + name, "DROVER_CONCURRENCY=8",
		"DROVER_HEARTBEAT=" + (lease / 4).String(), "DROVER_LEASE=" + lease.String(), "DROVER_GRACE=2s", "DROVER_LOG_LEVEL=info",
	})
	*procs = append(*procs, p)
	return p
}

// The kill test's workload: 500 tasks of sleepShort, every tenth of
// sleepLong instead. A long task is what the victim is killed in: one
// whose start is recorded less than sleepLong ago cannot have finished.
const (
	remoteTasks = 500
	sleepShort  = 200 * time.Millisecond
	sleepLong   = 10 * time.Second
)

// killRemote is acceptance 4 of issue 16 on whatever dispatcher c
// reaches at url: two remote runners (leases of lease) take 500 tasks;
// one is killed -9 while it runs some; all 500 succeed, and the tasks it
// was running when killed ran again on the survivor, after their leases
// on the victim ended.
func killRemote(t *testing.T, c *client.Client, url string, lease time.Duration, procs *[]*proctest.Proc) {
	victim := remoteRunner(t, "victim", url, remoteKey, lease, procs)
	remoteRunner(t, "survivor", url, remoteKey, lease, procs)

	specs := make([]task.Spec, remoteTasks)
	long := map[int]bool{}
	for i := range specs {
		d := sleepShort
		if i%10 == 0 {
			d, long[i] = sleepLong, true
		}
		specs[i] = task.Spec{Function: "sleep", Args: json.RawMessage(fmt.Sprintf(`{"ms":%d}`, d.Milliseconds()))}
	}
	ctx := context.Background()
	var ids []string
	isLong := map[string]bool{}
	for i := 0; i < len(specs); i += 250 {
		sts, err := c.SubmitBatch(ctx, specs[i:i+250])
		if err != nil {
			t.Fatalf("submit: %v", err)
		}
		for k, st := range sts {
			ids = append(ids, st.ID)
			isLong[st.ID] = long[i+k]
		}
	}

	// Kill the victim while it runs a long task: one whose start the
	// statuses show less than sleepLong - 1s ago, so that its function
	// (started after its start was recorded) cannot have returned. A
	// status saying "running" is not enough: the collector records the
	// outcome some time after the runner acked, and the victim's other
	// leases may not be started yet (their tasks then run at attempt 1
	// elsewhere, which shows nothing).
	var held []string
	var killedAt time.Time
	deadline := time.Now().Add(5 * time.Minute)
	for len(held) == 0 {
		for st, err := range c.ListAll(ctx, client.ListOptions{State: task.Running, Limit: 100}) {
			if err != nil {
				break
			}
			if st.Runner == "victim" && isLong[st.ID] && st.Attempt == 1 && time.Since(st.StartedAt) < sleepLong-time.Second {
				held = append(held, st.ID)
			}
		}
		if len(held) > 0 {
			victim.Kill()
			killedAt = time.Now()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the victim was never seen running a long task: %s", victim.Tail(2000))
		}
		time.Sleep(250 * time.Millisecond)
	}

	final := waitProgress(t, c, ids, 3*time.Minute)
	rerun, byVictim := 0, 0
	for _, id := range ids {
		st := final[id]
		if st.State != task.Succeeded {
			t.Errorf("task %s ended %s at attempt %d on %s (%s)", id, st.State, st.Attempt, st.Runner, st.Error)
		}
		if st.Runner == "victim" {
			byVictim++
			if st.FinishedAt.After(killedAt) {
				t.Errorf("task %s finished on the victim at %s, after it was killed at %s", id, st.FinishedAt, killedAt)
			}
		}
		if st.Attempt > 1 {
			rerun++
		}
	}
	// The victim's lease of each held task was extended at most a
	// heartbeat (lease/4) before the kill, so it ended at least 3/4 of a
	// lease after it; half a lease leaves room for the clocks' reading.
	for _, id := range held {
		st := final[id]
		if st.Attempt < 2 || st.Runner != "survivor" {
			t.Errorf("task %s, running on the victim when it was killed, ended at attempt %d on %q; want attempt 2 or later on the survivor", id, st.Attempt, st.Runner)
		}
		if st.StartedAt.Before(killedAt.Add(lease / 2)) {
			t.Errorf("task %s ran again at %s, before its lease on the victim ended (killed at %s, lease %s)", id, st.StartedAt, killedAt, lease)
		}
	}
	t.Logf("%d tasks succeeded: %d finished by the victim, %d ran more than once, %d held by the victim when killed ran again on the survivor", len(ids), byVictim, rerun, len(held))
}

// waitProgress waits for every task to be terminal and returns the
// statuses. It fails only when no task has become terminal for stall
// (a task lost, not a slow machine), naming every task not terminal.
// Four waiters, not more: each long poll reads the store several times
// a second, and on the emulator those reads compete with the runners'.
func waitProgress(t *testing.T, c *client.Client, ids []string, stall time.Duration) map[string]*task.Status {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu       sync.Mutex
		out      = make(map[string]*task.Status, len(ids))
		progress = time.Now()
		next     = make(chan string)
		wg       sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			for id := range next {
				for ctx.Err() == nil {
					st, err := c.Wait(ctx, id, client.WaitOptions{PollWait: 10 * time.Second, MinInterval: 100 * time.Millisecond})
					if err != nil {
						time.Sleep(time.Second) // a dispatcher busy for a moment: ask again
						continue
					}
					mu.Lock()
					out[id], progress = st, time.Now()
					mu.Unlock()
					break
				}
			}
		})
	}
	go func() {
		for range time.Tick(time.Second) {
			mu.Lock()
			stalled := time.Since(progress) > stall
			mu.Unlock()
			if stalled || ctx.Err() != nil {
				cancel()
				return
			}
		}
	}()
	for _, id := range ids {
		select {
		case next <- id:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
	if len(out) == len(ids) {
		return out
	}
	var missing []string
	for _, id := range ids {
		if out[id] != nil {
			continue
		}
		st, err := c.Get(context.Background(), id)
		if err != nil {
			missing = append(missing, fmt.Sprintf("%s (%v)", id, err))
			continue
		}
		missing = append(missing, fmt.Sprintf("%s %s at attempt %d on %q", id, st.State, st.Attempt, st.Runner))
	}
	t.Fatalf("no task became terminal for %s; %d of %d are not: %s", stall, len(missing), len(ids), strings.Join(missing, "; "))
	return nil
}

// stopWithTest returns the list of processes a test adds to: each is
// stopped when t ends, and its log's tail shown if t failed.
func stopWithTest(t *testing.T) *[]*proctest.Proc {
	var procs []*proctest.Proc
	t.Cleanup(func() {
		for _, p := range procs {
			p.Stop()
		}
		if t.Failed() {
			for _, p := range procs {
				t.Logf("---- %s log (last 3000 bytes) ----\n%s", p.Name, p.Tail(3000))
			}
		}
	})
	return &procs
}

// TestRemoteRunnersDev: two remote runners over HTTP against drover dev
// with no runners of its own, one of them killed -9 mid-run.
func TestRemoteRunnersDev(t *testing.T) {
	addr := proctest.FreeAddr(t)
	procs := stopWithTest(t)
	dev := proctest.Start(t, "dev", droverBin, []string{"dev"}, []string{
		"DROVER_ADDR=" + addr, "DROVER_RUNNERS=0", "DROVER_API_KEYS=" + remoteKey,
		"DROVER_DATA_DIR=" + filepath.Join(t.TempDir(), "data"), "DROVER_LOG_LEVEL=info",
	})
	*procs = append(*procs, dev)
	dev.WaitReady(t, "http://"+addr+"/healthz", time.Minute)
	url := "http://" + addr
	c := client.New(url, client.WithAPIKey(remoteKey))

	// A bad key stops a remote runner at start, with a line that says so.
	bad := proctest.Start(t, "bad-key", droverBin, []string{"runner", "--server", url}, []string{"DROVER_API_KEY=not-the-key-not-the-key"})
	select {
	case <-bad.Done():
	case <-time.After(time.Minute):
		bad.Kill()
		t.Fatal("a remote runner with a bad key did not stop")
	}
	if out := bad.Tail(2000); !strings.Contains(out, "401") || !strings.Contains(out, "DROVER_API_KEY") {
		t.Errorf("bad key output %q; want the 401 and DROVER_API_KEY named", out)
	}

	// So does a queue the dispatcher does not lease tasks of.
	grid := proctest.Start(t, "grid", droverBin, []string{"runner", "--server", url}, []string{"DROVER_API_KEY=" + remoteKey, "DROVER_QUEUES=grid"})
	select {
	case <-grid.Done():
	case <-time.After(time.Minute):
		grid.Kill()
		t.Fatal("a remote runner serving a queue the dispatcher does not lease did not stop")
	}
	if out := grid.Tail(2000); !strings.Contains(out, "queue grid") || !strings.Contains(out, "DROVER_QUEUES") {
		t.Errorf("undeclared queue output %q; want queue grid and DROVER_QUEUES named", out)
	}

	killRemote(t, c, url, 4*time.Second, procs)
}
