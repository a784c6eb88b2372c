package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/pkg/task"
)

// batchSize is the most tasks of one POST /v1/tasks/batch (api.MaxBatch).
const batchSize = 1000

// readSpecFile reads one task spec per line (the body of POST /v1/tasks;
// blank lines and lines starting with # are skipped) from path ("-":
// stdin), filling what a line leaves unset from def, and checks each as
// the server would, naming the line of the first that is wrong.
func readSpecFile(path string, def task.Spec) ([]task.Spec, error) {
	var r io.Reader = stdin
	name := "stdin"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r, name = f, path
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var specs []task.Spec
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		var sp task.Spec
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&sp); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, n, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("%s:%d: more than one JSON value on the line", name, n)
		}
		if sp.Queue == "" {
			sp.Queue = def.Queue
		}
		if sp.Timeout == 0 {
			sp.Timeout = def.Timeout
		}
		if sp.MaxAttempts == 0 {
			sp.MaxAttempts = def.MaxAttempts
		}
		if sp.Delay == 0 {
			sp.Delay = def.Delay
		}
		if check := sp; check.Normalize() != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, n, check.Normalize())
		}
		specs = append(specs, sp)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(specs) == 0 {
		return nil, fmt.Errorf("%s holds no tasks", name)
	}
	return specs, nil
}

// submitFile submits specs in batches of batchSize with a progress bar on
// stderr, then (wait) waits for every task to end with another, and
// prints each task's ID and state, in the file's order, on stdout.
func (v *verb) submitFile(ctx context.Context, c *client.Client, specs []task.Spec, wait bool) int {
	bar := newProgress(v.stderr, "submitted", len(specs))
	sts := make([]*task.Status, 0, len(specs))
	for i := 0; i < len(specs); i += batchSize {
		got, err := c.SubmitBatch(ctx, specs[i:min(i+batchSize, len(specs))])
		if err != nil {
			bar.done("")
			v.printStates(sts)
			if len(sts) > 0 {
				fmt.Fprintf(v.stderr, "drover submit: the first %d tasks were submitted (printed above); from task %d on none were\n", len(sts), len(sts)+1)
			}
			return v.fail(err)
		}
		sts = append(sts, got...)
		bar.set(len(sts), "")
	}
	bar.done("")
	if !wait {
		v.printStates(sts)
		return exitOK
	}
	bar = newProgress(v.stderr, "finished", len(sts))
	var (
		mu     sync.Mutex
		counts = map[task.State]int{}
		ended  int
		g      errgroup.Group
	)
	note := func() string {
		var parts []string
		for _, s := range []task.State{task.Succeeded, task.Failed, task.Cancelled} {
			if counts[s] > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
			}
		}
		return strings.Join(parts, ", ")
	}
	g.SetLimit(32)
	for i, st := range sts {
		g.Go(func() error {
			if !st.State.Terminal() {
				last, err := c.Wait(ctx, st.ID, client.WaitOptions{})
				if err != nil {
					return fmt.Errorf("wait for %s: %w", st.ID, err)
				}
				st = last
			}
			mu.Lock()
			defer mu.Unlock()
			sts[i] = st
			counts[st.State]++
			ended++
			bar.set(ended, note())
			return nil
		})
	}
	err := g.Wait()
	bar.done(note())
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(v.stderr, "drover submit: interrupted; %d of %d tasks had ended\n", ended, len(sts))
			return exitInterrupted
		}
		return v.fail(err)
	}
	v.printStates(sts)
	if counts[task.Failed]+counts[task.Cancelled] > 0 {
		return exitTaskFailed
	}
	return exitOK
}

// printStates prints one "ID  state" line per task (or the statuses as
// JSON with --json).
func (v *verb) printStates(sts []*task.Status) {
	if v.json {
		v.printJSON(sts)
		return
	}
	w := bufio.NewWriter(v.stdout)
	for _, st := range sts {
		fmt.Fprintf(w, "%s  %s\n", st.ID, st.State)
	}
	_ = w.Flush()
}

// progress draws "label n/total [#####.....] 50%  note" on w: redrawn in
// place (at most every 100ms) on a terminal, else a line at most every
// second, and always a last line.
type progress struct {
	w        io.Writer
	label    string
	total    int
	tty      bool
	last     time.Time
	n        int
	note     string
	finished bool
}

func newProgress(w io.Writer, label string, total int) *progress {
	return &progress{w: w, label: label, total: total, tty: isTerminal(w)}
}

func (p *progress) set(n int, note string) {
	p.n, p.note = n, note
	every := time.Second
	if p.tty {
		every = 100 * time.Millisecond
	}
	if n < p.total && time.Since(p.last) < every {
		return
	}
	p.draw()
}

// done draws the final state, with note.
func (p *progress) done(note string) {
	if p.finished {
		return
	}
	p.finished, p.note = true, note
	p.draw()
	if p.tty {
		fmt.Fprintln(p.w)
	}
}

func (p *progress) draw() {
	p.last = time.Now()
	const width = 30
	filled := 0
	if p.total > 0 {
		filled = p.n * width / p.total
	}
	line := fmt.Sprintf("%s %d/%d [%s%s] %3d%%", p.label, p.n, p.total, strings.Repeat("#", filled),
		strings.Repeat(".", width-filled), p.n*100/max(p.total, 1))
	if p.note != "" {
		line += "  " + p.note
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r\x1b[K%s", line)
		return
	}
	fmt.Fprintln(p.w, line)
}

// errNoFileArgs is submit's usage error for positional arguments with --file.
var errNoFileArgs = errors.New("--file takes the tasks from the file: give no function or args")
