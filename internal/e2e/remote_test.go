package e2e

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
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
		"DROVER_HEARTBEAT=1s", "DROVER_LEASE=" + lease.String(), "DROVER_GRACE=2s", "DROVER_LOG_LEVEL=info",
	})
	*procs = append(*procs, p)
	return p
}

// killRemote is acceptance 4 of issue 16 on whatever dispatcher c
// reaches at url: two remote runners (leases of lease) take 500 tasks; one is killed -9
// while it runs some; all 500 succeed, and every task that ran again did
// so on the survivor, after its lease on the victim ended.
func killRemote(t *testing.T, c *client.Client, url string, lease time.Duration, procs *[]*proctest.Proc) {
	victim := remoteRunner(t, "victim", url, remoteKey, lease, procs)
	remoteRunner(t, "survivor", url, remoteKey, lease, procs)

	specs := make([]task.Spec, 500)
	for i := range specs {
		specs[i] = task.Spec{Function: "sleep", Args: json.RawMessage(`{"ms":200}`)}
	}
	ctx := context.Background()
	var ids []string
	for i := 0; i < len(specs); i += 250 {
		sts, err := c.SubmitBatch(ctx, specs[i:i+250])
		if err != nil {
			t.Fatalf("submit: %v", err)
		}
		for _, st := range sts {
			ids = append(ids, st.ID)
		}
	}
	// Kill the victim once the statuses show it running tasks.
	deadline := time.Now().Add(2 * time.Minute)
	for held := false; !held; {
		page, err := c.List(ctx, client.ListOptions{State: task.Running, Limit: 100})
		if err == nil {
			for _, st := range page.Tasks {
				held = held || st.Runner == "victim"
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the victim never ran a task: %s", victim.Tail(2000))
		}
		if !held {
			time.Sleep(50 * time.Millisecond)
		}
	}
	victim.Kill()

	final := waitAll(t, c, ids, 8*time.Minute)
	rerun, byVictim := 0, 0
	for _, id := range ids {
		st := final[id]
		if st.State != task.Succeeded {
			t.Errorf("task %s ended %s at attempt %d on %s (%s)", id, st.State, st.Attempt, st.Runner, st.Error)
		}
		if st.Runner == "victim" {
			byVictim++
		}
		if st.Attempt > 1 {
			rerun++
			if st.Runner != "survivor" {
				t.Errorf("task %s ran again (attempt %d) on %q; want the survivor", id, st.Attempt, st.Runner)
			}
		}
	}
	if rerun == 0 {
		t.Error("no task ran again after the kill: the victim held none when killed?")
	}
	t.Logf("500 tasks succeeded: %d finished by the victim before the kill, %d it held ran again on the survivor", byVictim, rerun)
}

// TestRemoteRunnersDev: two remote runners over HTTP against drover dev
// with no runners of its own, one of them killed -9 mid-run.
func TestRemoteRunnersDev(t *testing.T) {
	addr := proctest.FreeAddr(t)
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
	dev := proctest.Start(t, "dev", droverBin, []string{"dev"}, []string{
		"DROVER_ADDR=" + addr, "DROVER_RUNNERS=0", "DROVER_API_KEYS=" + remoteKey,
		"DROVER_DATA_DIR=" + filepath.Join(t.TempDir(), "data"), "DROVER_LOG_LEVEL=info",
	})
	procs = append(procs, dev)
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

	killRemote(t, c, url, 4*time.Second, &procs)
}
