package reliability

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/internal/awstest"
	"github.com/droverhq/drover/pkg/task"
)

// scale sizes the scenarios: RELIABILITY_SCALE=small (the default, inside
// go test ./...) or full (make reliability).
type scale struct {
	name         string
	soak         int // scenario 1 tasks
	crash        int // scenario 2 tasks
	perms        int // scenario 4 permutations, embedded store
	permsAWS     int // scenario 4 permutations, DynamoDB on moto
	poisonBatch  int // scenario 5 healthy tasks beside the poison
	outage       int // scenario 6 tasks before and after
	blobFaults   int // scenario 7 tasks
	soakDeadline time.Duration
	chaosWindow  time.Duration // scenario 1 kills only this long
	// scenario 8 (workflows): groups of members, chains of steps
	groups, members, chains, steps int
}

var (
	small = scale{name: "small", soak: 300, crash: 3, perms: 1000, permsAWS: 100, poisonBatch: 20, outage: 40, blobFaults: 60, soakDeadline: 8 * time.Minute, chaosWindow: 40 * time.Second, groups: 10, members: 5, chains: 10, steps: 3}
	full  = scale{name: "full", soak: 10000, crash: 10, perms: 10000, permsAWS: 2000, poisonBatch: 200, outage: 400, blobFaults: 500, soakDeadline: 40 * time.Minute, chaosWindow: 10 * time.Minute, groups: 200, members: 20, chains: 100, steps: 5}
	sc    = small
)

// row is one line of the results table.
type row struct {
	scenario, backend                                   string
	submitted, terminal, lost, duplicates, wrong, kills int
	took                                                time.Duration
	pass                                                bool
	note                                                string
}

var (
	tableMu sync.Mutex
	table   []row
)

// report adds r to the table and fails t if r did not pass.
func report(t *testing.T, r row) {
	t.Helper()
	r.lost = r.submitted - r.terminal
	tableMu.Lock()
	table = append(table, r)
	tableMu.Unlock()
	t.Logf("%s [%s]: submitted %d terminal %d lost %d dup %d (kills %d) wrong %d in %s: %s",
		r.scenario, r.backend, r.submitted, r.terminal, r.lost, r.duplicates, r.kills, r.wrong, r.took.Round(time.Millisecond), r.note)
	if !r.pass {
		t.Errorf("%s [%s] FAILED: %s", r.scenario, r.backend, r.note)
	}
}

func printTable() {
	tableMu.Lock()
	defer tableMu.Unlock()
	if len(table) == 0 {
		return
	}
	slices.SortStableFunc(table, func(a, b row) int {
		if c := strings.Compare(a.scenario, b.scenario); c != 0 {
			return c
		}
		return strings.Compare(a.backend, b.backend)
	})
	var b strings.Builder
	fmt.Fprintf(&b, "\nReliability results (RELIABILITY_SCALE=%s)\n\n", sc.name)
	fmt.Fprintf(&b, "| scenario | backend | submitted | terminal | lost | duplicate executions | kills | wrong final states | time | result | notes |\n")
	fmt.Fprintf(&b, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
	for _, r := range table {
		res := "PASS"
		if !r.pass {
			res = "FAIL"
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %d | %d | %s | %s | %s |\n", r.scenario, r.backend,
			r.submitted, r.terminal, r.lost, r.duplicates, r.kills, r.wrong, r.took.Round(100*time.Millisecond), res, r.note)
	}
	fmt.Print(b.String())
	if p := os.Getenv("RELIABILITY_TABLE"); p != "" {
		_ = os.WriteFile(p, []byte(b.String()), 0o644)
	}
}

var (
	moto        *awstest.Moto
	motoErr     error
	droverBin   string
	relrunBin   string
	binDir      string
	skipAWSNote string
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		flag.Parse()
		switch os.Getenv("RELIABILITY_SCALE") {
		case "", "small":
		case "full":
			sc = full
		default:
			fmt.Fprintln(os.Stderr, "RELIABILITY_SCALE must be small or full")
			return 2
		}
		defer printTable()
		if testing.Short() {
			skipAWSNote = "skipped in -short mode (needs moto_server)"
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "drover-rel-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binDir = dir
		droverBin, relrunBin = filepath.Join(dir, "drover"), filepath.Join(dir, "relrunner")
		for bin, pkg := range map[string]string{droverBin: "github.com/droverhq/drover/cmd/drover", relrunBin: "github.com/droverhq/drover/internal/reliability/cmd/relrunner"} {
			build := exec.Command("go", "build", "-o", bin, pkg)
			build.Stdout, build.Stderr = os.Stderr, os.Stderr
			if err := build.Run(); err != nil {
				fmt.Fprintln(os.Stderr, "reliability: build:", err)
				return 1
			}
		}
		moto, err = awstest.Start()
		if awstest.OptedOut(err) {
			moto, skipAWSNote = nil, awstest.SkipEnv+"=1 and no moto_server"
			return m.Run()
		}
		if err != nil {
			// Part of make test, like internal/e2e: no emulator is a failure.
			fmt.Fprintln(os.Stderr, "reliability:", err)
			return 1
		}
		defer moto.Stop()
		moto.Setenv()
		return m.Run()
	}())
}

// backends are what every scenario runs against.
func backends(t *testing.T) []backend {
	bs := []backend{memBackend{}}
	if moto != nil {
		bs = append(bs, motoBackend{})
	}
	return bs
}

// forEach runs fn as a parallel subtest per backend.
func forEach(t *testing.T, fn func(t *testing.T, b backend)) {
	for _, b := range backends(t) {
		t.Run(b.name(), func(t *testing.T) {
			t.Parallel()
			fn(t, b)
		})
	}
	if moto == nil {
		t.Logf("moto backend: %s", skipAWSNote)
	}
}

// waitTerminal polls the store until every task is terminal or the
// deadline passes, and returns the documents found (nil where missing).
func waitTerminal(t *testing.T, st *task.Store, ids []string, within time.Duration) map[string]*task.Status {
	t.Helper()
	deadline := time.Now().Add(within)
	out := map[string]*task.Status{}
	for {
		var pending []string
		for _, id := range ids {
			if s := out[id]; s == nil || !s.State.Terminal() {
				pending = append(pending, id)
			}
		}
		for i := 0; i < len(pending); i += 100 {
			chunk := pending[i:min(i+100, len(pending))]
			docs, err := st.GetMany(context.Background(), chunk)
			if err != nil {
				t.Logf("poll statuses: %v", err)
				break
			}
			for j, d := range docs {
				if d != nil {
					out[chunk[j]] = d
				}
			}
		}
		done := 0
		for _, id := range ids {
			if s := out[id]; s != nil && s.State.Terminal() {
				done++
			}
		}
		if done == len(ids) || time.Now().After(deadline) {
			return out
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// dumpIfStuck has e log what its queues hold and the tasks that did not
// end, when some did not and e can tell (the moto backend).
func dumpIfStuck(t *testing.T, e env, ids []string, docs map[string]*task.Status) {
	t.Helper()
	if d, ok := e.(interface {
		DumpStuck(*testing.T, []string, map[string]*task.Status)
	}); ok && countTerminal(docs) < len(ids) {
		d.DumpStuck(t, ids, docs)
	}
}

func countTerminal(docs map[string]*task.Status) int {
	n := 0
	for _, d := range docs {
		if d != nil && d.State.Terminal() {
			n++
		}
	}
	return n
}
