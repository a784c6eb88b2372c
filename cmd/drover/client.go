package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/pkg/task"
)

// Exit codes of the client verbs.
const (
	exitOK          = 0   // done; for submit --wait and wait, the task succeeded
	exitTaskFailed  = 1   // the task ended failed or cancelled
	exitUsage       = 2   // bad arguments, flags or environment
	exitAPI         = 3   // the API answered with an error, or could not be reached
	exitWaitTimeout = 4   // wait --timeout ran out before the task ended
	exitInterrupted = 130 // interrupted by a signal
)

// defaultURL is where the client verbs look for a dispatcher without
// DROVER_URL: the address drover dev listens on.
const defaultURL = "http://127.0.0.1:8080"

// stdin is where "submit <function> -" reads its args; tests replace it.
var stdin io.Reader = os.Stdin

const envHelp = `
Environment:
  DROVER_URL      the dispatcher's base URL (default ` + defaultURL + `)
  DROVER_API_KEY  bearer token sent to the dispatcher, if it requires one

Exit status: 0 done (with --wait: the task succeeded), 1 the task failed or
was cancelled, 2 usage error, 3 API or connection error, 4 wait timed out.
`

func clientCommands() map[string]*command {
	return map[string]*command{
		"submit": {
			summary: "submit a task: submit <function> [args-json] [--wait], or many: submit --file tasks.jsonl [--wait]",
			run:     runSubmit,
		},
		"status": {
			summary: "print a task's status: status <id>",
			run:     runStatus,
		},
		"wait": {
			summary: "wait until a task ends and print its status: wait <id> [--timeout 5m]",
			run:     runWait,
		},
		"ls": {
			summary: "list tasks, newest first, as a table: ls [--state s] [--function f] [--watch]",
			run:     runList,
		},
		"cancel": {
			summary: "cancel a queued or running task: cancel <id>",
			run:     runCancel,
		},
		"runners": {
			summary: "list the runners seen recently",
			run:     runRunners,
		},
		"retry": {
			summary: "re-run failed or cancelled tasks as new tasks: retry <id>... | retry --state failed [--function f] [--queue q]",
			run:     runRetry,
		},
		"redrive": {
			summary: "submit dead-lettered tasks again: redrive [--queue q] [--limit n]",
			run:     runRedrive,
		},
		"stats": {
			summary: "counts by state, function and queue, throughput and latency of the last hour, runners online",
			run:     runStats,
		},
	}
}

func runSubmit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	v := newVerb("submit", "submit <function> [args-json | -] [flags] | submit --file tasks.jsonl [flags]", stdout, stderr)
	var (
		spec           task.Spec
		timeout, delay time.Duration
		wait           bool
	)
	v.fs.StringVar(&spec.Queue, "queue", "", `queue to submit to (server default "default")`)
	v.fs.DurationVar(&timeout, "timeout", 0, "longest one attempt may run (server default 5m)")
	v.fs.IntVar(&spec.MaxAttempts, "max-attempts", 0, "attempts before the task fails for good (server default 3)")
	v.fs.DurationVar(&delay, "delay", 0, "hold the task this long before its first attempt")
	v.fs.StringVar(&spec.IdempotencyKey, "key", "", "idempotency key: submitting the same key again returns the first task")
	v.fs.BoolVar(&wait, "wait", false, "wait until the task ends and print its final status")
	file := v.fs.String("file", "", "submit the tasks of a JSON Lines file (\"-\": stdin), one POST /v1/tasks body a line, in batches of 1000; --queue, --timeout, --max-attempts and --delay fill what a line leaves unset")
	v.fs.Func("require", `a trait the runner must have, with an optional constraint: --require gpu --require 'python>=3.10' (repeatable)`, func(s string) error {
		name, constraint := splitRequirement(s)
		if spec.Requires == nil {
			spec.Requires = task.Requires{}
		}
		spec.Requires[name] = constraint
		return nil
	})
	pos, code, ok := v.parse(args, 0, 2)
	if !ok {
		return code
	}
	if *file != "" {
		if len(pos) > 0 {
			return v.usageError("%v", errNoFileArgs)
		}
		if spec.IdempotencyKey != "" {
			return v.usageError("--key names one task: put idempotency_key on the file's lines instead")
		}
		specs, err := readSpecFile(*file, task.Spec{Queue: spec.Queue, Timeout: task.Duration(timeout),
			MaxAttempts: spec.MaxAttempts, Delay: task.Duration(delay)})
		if err != nil {
			return v.usageError("%v", err)
		}
		c, code, ok := v.client()
		if !ok {
			return code
		}
		return v.submitFile(ctx, c, specs, wait)
	}
	if len(pos) == 0 {
		return v.usageError("missing arguments")
	}
	spec.Function = pos[0]
	if len(pos) == 2 {
		a, err := readArgs(pos[1])
		if err != nil {
			return v.usageError("%v", err)
		}
		spec.Args = a
	}
	spec.Timeout, spec.Delay = task.Duration(timeout), task.Duration(delay)
	// Check locally what the server would reject, for a usage error before
	// any request. The server applies the defaults itself.
	if check := spec; check.Normalize() != nil {
		return v.usageError("%v", check.Normalize())
	}
	c, code, ok := v.client()
	if !ok {
		return code
	}
	st, err := c.Submit(ctx, spec)
	if err != nil {
		return v.fail(err)
	}
	if st.Waiting != "" {
		fmt.Fprintf(stderr, "warning: %s: the task waits until one starts\n", st.Waiting)
	}
	if !wait {
		if v.json {
			return v.printJSON(st)
		}
		fmt.Fprintf(stdout, "%s  %s\n", st.ID, st.State)
		return exitOK
	}
	if !st.State.Terminal() && !v.json {
		fmt.Fprintf(stderr, "submitted %s, waiting for it to end…\n", st.ID)
	}
	return v.wait(ctx, c, st, 0)
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return oneTask(ctx, "status", args, stdout, stderr, (*client.Client).Get)
}

// oneTask runs a verb that takes one task id, calls op with it and prints
// the status it returns.
func oneTask(ctx context.Context, name string, args []string, stdout, stderr io.Writer,
	op func(*client.Client, context.Context, string) (*task.Status, error)) int {
	v := newVerb(name, name+" <id> [flags]", stdout, stderr)
	pos, code, ok := v.parse(args, 1, 1)
	if !ok {
		return code
	}
	c, code, ok := v.client()
	if !ok {
		return code
	}
	st, err := op(c, ctx, pos[0])
	if err != nil {
		return v.fail(err)
	}
	return v.printStatus(st)
}

func runWait(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	v := newVerb("wait", "wait <id> [flags]", stdout, stderr)
	timeout := v.fs.Duration("timeout", 5*time.Minute, "give up after this long (0: wait until interrupted)")
	pos, code, ok := v.parse(args, 1, 1)
	if !ok {
		return code
	}
	if *timeout < 0 {
		return v.usageError("--timeout %s is negative", *timeout)
	}
	c, code, ok := v.client()
	if !ok {
		return code
	}
	return v.wait(ctx, c, &task.Status{ID: pos[0]}, *timeout)
}

func runList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	v := newVerb("ls", "ls [flags]", stdout, stderr)
	var opts client.ListOptions
	v.fs.Func("state", "only tasks in this state: queued, waiting, running, retrying, succeeded, failed or cancelled", func(s string) error {
		if !task.State(s).Valid() {
			return errors.New("not a state")
		}
		opts.State = task.State(s)
		return nil
	})
	v.fs.StringVar(&opts.Function, "function", "", "only tasks of this function")
	v.fs.StringVar(&opts.Queue, "queue", "", "only tasks of this queue")
	v.fs.IntVar(&opts.Limit, "limit", 0, "tasks per page (server default)")
	v.fs.StringVar(&opts.Cursor, "cursor", "", "continue from an earlier page's cursor")
	watch := v.fs.Bool("watch", false, "redraw the list every --interval until interrupted")
	interval := v.fs.Duration("interval", 2*time.Second, "with --watch: how often to redraw")
	if _, code, ok := v.parse(args, 0, 0); !ok {
		return code
	}
	if opts.Limit < 0 {
		return v.usageError("--limit %d is negative", opts.Limit)
	}
	if *watch && (*interval < 100*time.Millisecond || v.json) {
		return v.usageError("--watch needs an --interval of at least 100ms, and no --json")
	}
	c, code, ok := v.client()
	if !ok {
		return code
	}
	if !*watch {
		p, err := c.List(ctx, opts)
		if err != nil {
			return v.fail(err)
		}
		if v.json {
			return v.printJSON(p)
		}
		writeTaskTable(stdout, p.Tasks, time.Now())
		if p.NextCursor != "" {
			fmt.Fprintf(stderr, "more: drover ls --cursor %s\n", p.NextCursor)
		}
		return exitOK
	}
	// --watch: on a terminal the screen is cleared before each table;
	// elsewhere tables follow each other, a blank line apart.
	clear := isTerminal(stdout)
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for n := 0; ; n++ {
		p, err := c.List(ctx, opts)
		if ctx.Err() != nil {
			return exitOK // interrupted: the end of watching
		}
		var b bytes.Buffer
		switch {
		case clear:
			b.WriteString("\x1b[H\x1b[2J")
		case n > 0:
			b.WriteString("\n")
		}
		now := time.Now()
		fmt.Fprintf(&b, "every %s, %s  (interrupt to stop)\n", *interval, now.Format(time.TimeOnly))
		if err != nil {
			// Kept watching: a dispatcher restarting comes back.
			fmt.Fprintf(&b, "drover ls: %v\n", err)
		} else {
			writeTaskTable(&b, p.Tasks, now)
		}
		_, _ = stdout.Write(b.Bytes())
		select {
		case <-ctx.Done():
			return exitOK
		case <-tick.C:
		}
	}
}

// writeTaskTable writes tasks as an aligned table.
func writeTaskTable(w io.Writer, tasks []*task.Status, now time.Time) {
	if len(tasks) == 0 {
		fmt.Fprintln(w, "no tasks")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tFUNCTION\tSTATE\tATTEMPT\tAGE\tRUNNER/ERROR")
	for _, st := range tasks {
		note := st.Runner
		if st.Error != "" {
			note = oneLine(st.Error, 60)
		}
		if note == "" {
			note = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\n", st.ID, st.Function, st.State,
			st.Attempt, st.MaxAttempts, age(now, st.CreatedAt), note)
	}
	tw.Flush()
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func runCancel(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return oneTask(ctx, "cancel", args, stdout, stderr, (*client.Client).Cancel)
}

func runRunners(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	v := newVerb("runners", "runners [flags]", stdout, stderr)
	if _, code, ok := v.parse(args, 0, 0); !ok {
		return code
	}
	c, code, ok := v.client()
	if !ok {
		return code
	}
	rs, err := c.Runners(ctx)
	if err != nil {
		return v.fail(err)
	}
	if v.json {
		return v.printJSON(rs)
	}
	if len(rs) == 0 {
		fmt.Fprintln(stdout, "no runners seen recently")
		return exitOK
	}
	slices.SortFunc(rs, func(a, b task.RunnerInfo) int {
		return strings.Compare(a.Name+"\x00"+a.ID, b.Name+"\x00"+b.ID)
	})
	now := time.Now()
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tHOST\tQUEUES\tFUNCTIONS\tTRAITS\tACTIVE/CONCURRENCY\tSEEN")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\n", orDash(r.Name), orDash(r.Host), orDash(strings.Join(r.Queues, ",")),
			oneLine(strings.Join(r.Functions, ","), 50), orDash(oneLine(r.Traits.String(), 60)), r.Active, r.Concurrency, age(now, r.SeenAt)+" ago")
	}
	tw.Flush()
	return exitOK
}

func runRetry(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	v := newVerb("retry", "retry <id>... | retry --state failed|cancelled [--function f] [--queue q] [flags]", stdout, stderr)
	var opts client.ListOptions
	v.fs.Func("state", "retry every task in this state: failed or cancelled", func(s string) error {
		if s != string(task.Failed) && s != string(task.Cancelled) {
			return errors.New("only failed or cancelled tasks can be retried")
		}
		opts.State = task.State(s)
		return nil
	})
	v.fs.StringVar(&opts.Function, "function", "", "with --state: only tasks of this function")
	v.fs.StringVar(&opts.Queue, "queue", "", "with --state: only tasks of this queue")
	pos, code, ok := v.parse(args, 0, 1<<20)
	if !ok {
		return code
	}
	if (len(pos) == 0) == (opts.State == "") {
		return v.usageError("give task IDs or --state, not both")
	}
	if opts.State == "" && (opts.Function != "" || opts.Queue != "") {
		return v.usageError("--function and --queue select tasks with --state")
	}
	c, code, ok := v.client()
	if !ok {
		return code
	}
	ids := pos
	if opts.State != "" {
		opts.Limit = 1000
		for st, err := range c.ListAll(ctx, opts) {
			if err != nil {
				return v.fail(err)
			}
			ids = append(ids, st.ID)
		}
	}
	var out []*task.Status
	for _, id := range ids {
		st, err := c.Retry(ctx, id)
		if err != nil {
			fmt.Fprintf(stderr, "drover retry %s: %v\n", id, err)
			return v.fail(err)
		}
		out = append(out, st)
		if !v.json {
			fmt.Fprintf(stdout, "%s retried as %s\n", id, st.ID)
		}
	}
	if v.json {
		return v.printJSON(out)
	}
	if len(ids) == 0 {
		fmt.Fprintln(stdout, "no tasks to retry")
	}
	return exitOK
}

func runRedrive(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	v := newVerb("redrive", "redrive [--queue q] [--limit n] [flags]", stdout, stderr)
	queue := v.fs.String("queue", "", "only dead letters of this queue")
	limit := v.fs.Int("limit", 0, "redrive at most this many (all)")
	if _, code, ok := v.parse(args, 0, 0); !ok {
		return code
	}
	if *limit < 0 {
		return v.usageError("--limit %d is negative", *limit)
	}
	c, code, ok := v.client()
	if !ok {
		return code
	}
	sts, err := c.Redrive(ctx, *queue, *limit)
	if err != nil {
		return v.fail(err)
	}
	if v.json {
		return v.printJSON(sts)
	}
	for _, st := range sts {
		fmt.Fprintf(stdout, "%s redriven as %s\n", strings.TrimPrefix(st.IdempotencyKey, "retry:"), st.ID)
	}
	fmt.Fprintf(stdout, "%d dead letters redriven\n", len(sts))
	return exitOK
}

func runStats(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	v := newVerb("stats", "stats [flags]", stdout, stderr)
	if _, code, ok := v.parse(args, 0, 0); !ok {
		return code
	}
	c, code, ok := v.client()
	if !ok {
		return code
	}
	st, err := c.Stats(ctx)
	if err != nil {
		return v.fail(err)
	}
	if v.json {
		return v.printJSON(st)
	}
	writeStats(stdout, st)
	return exitOK
}

// writeStats prints stats as rq info does: states, then a table per
// function and per queue, then the last hour's throughput and latency.
func writeStats(w io.Writer, st *task.Stats) {
	fmt.Fprintf(w, "%d tasks", st.Total)
	if st.Truncated {
		fmt.Fprintf(w, " (the newest %d counted)", task.MaxStatsScan)
	}
	fmt.Fprintf(w, ", %d runners online\n\n", st.RunnersOnline)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := func(first string) {
		fmt.Fprint(tw, first+"\t")
		for _, s := range task.States {
			fmt.Fprint(tw, strings.ToUpper(string(s))+"\t")
		}
		fmt.Fprintln(tw)
	}
	row := func(name string, c map[task.State]int) {
		fmt.Fprint(tw, name+"\t")
		for _, s := range task.States {
			fmt.Fprintf(tw, "%d\t", c[s])
		}
		fmt.Fprintln(tw)
	}
	header("")
	row("all", st.States)
	for _, group := range []struct {
		title string
		m     map[string]map[task.State]int
	}{{"FUNCTION", st.Functions}, {"QUEUE", st.Queues}} {
		fmt.Fprintln(tw)
		header(group.title)
		names := slices.Sorted(maps.Keys(group.m))
		for _, n := range names {
			row(n, group.m[n])
		}
	}
	tw.Flush()
	var done, failed int
	for _, m := range st.Minutes {
		done += m.Succeeded + m.Failed + m.Cancelled
		failed += m.Failed
	}
	fmt.Fprintf(w, "\nlast hour: %d finished (%.1f/min), %d failed", done, float64(done)/60, failed)
	if n := len(st.Minutes); n > 0 {
		last := st.Minutes[n-1]
		fmt.Fprintf(w, "; this minute %d finished, queue wait p50 %s p95 %s, run time p50 %s p95 %s",
			last.Succeeded+last.Failed+last.Cancelled, fmtMS(last.QueueWaitP50), fmtMS(last.QueueWaitP95),
			fmtMS(last.RunTimeP50), fmtMS(last.RunTimeP95))
	}
	fmt.Fprintln(w)
}

func fmtMS(ms float64) string {
	return roundDuration(time.Duration(ms * float64(time.Millisecond)))
}

// verb is one run of a client verb: its flags, its output and what it needs
// to talk to the API.
type verb struct {
	name           string
	fs             *flag.FlagSet
	stdout, stderr io.Writer
	json           bool
	baseURL        string
	// rec keeps the last response body for --json.
	rec *recorder
}

func newVerb(name, usage string, stdout, stderr io.Writer) *verb {
	v := &verb{name: name, fs: flag.NewFlagSet("drover "+name, flag.ContinueOnError), stdout: stdout, stderr: stderr}
	v.fs.SetOutput(stderr)
	v.fs.BoolVar(&v.json, "json", false, "print the API's JSON response, indented, instead of text")
	v.fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: drover %s\n\nFlags may come before or after the arguments.\n\nFlags:\n", usage)
		v.fs.PrintDefaults()
		fmt.Fprint(stderr, envHelp)
	}
	return v
}

// parse parses flags wherever they stand among args (the flag package stops
// at the first argument that is not a flag) and returns the positional
// arguments, checking that there are between minPos and maxPos of them. A "--"
// ends the flags. When ok is false the verb must return code.
func (v *verb) parse(args []string, minPos, maxPos int) (pos []string, code int, ok bool) {
	for {
		if err := v.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK, false
			}
			return nil, exitUsage, false // the flag package has said why
		}
		rest := v.fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	switch {
	case len(pos) > maxPos:
		return nil, v.usageError("unexpected argument %q", pos[maxPos]), false
	case len(pos) < minPos:
		return nil, v.usageError("missing arguments"), false
	}
	return pos, exitOK, true
}

func (v *verb) usageError(format string, a ...any) int {
	fmt.Fprintf(v.stderr, "drover %s: %s\nRun 'drover %s -h' for usage.\n", v.name, fmt.Sprintf(format, a...), v.name)
	return exitUsage
}

// client returns an API client configured from DROVER_URL and
// DROVER_API_KEY.
func (v *verb) client() (c *client.Client, code int, ok bool) {
	v.baseURL = os.Getenv("DROVER_URL")
	if v.baseURL == "" {
		v.baseURL = defaultURL
	}
	if u, err := url.Parse(v.baseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fmt.Fprintf(v.stderr, "drover %s: DROVER_URL %q is not an http:// or https:// URL\n", v.name, v.baseURL)
		return nil, exitUsage, false
	}
	v.rec = &recorder{next: http.DefaultTransport}
	opts := []client.Option{client.WithHTTPClient(&http.Client{Transport: v.rec})}
	if key := strings.TrimSpace(os.Getenv("DROVER_API_KEY")); key != "" {
		opts = append(opts, client.WithAPIKey(key))
	}
	return client.New(v.baseURL, opts...), exitOK, true
}

// fail reports err from the API and returns the exit code for it.
func (v *verb) fail(err error) int {
	if errors.Is(err, context.Canceled) {
		fmt.Fprintf(v.stderr, "drover %s: interrupted\n", v.name)
		return exitInterrupted
	}
	msg := err.Error()
	var e *client.Error
	switch {
	case errors.As(err, &e):
		if e.Detail != "" {
			msg = e.Detail
		}
		if e.Status == http.StatusUnauthorized && os.Getenv("DROVER_API_KEY") == "" {
			msg += " (set DROVER_API_KEY)"
		}
	default:
		msg += " (DROVER_URL is " + v.baseURL + ")"
	}
	fmt.Fprintf(v.stderr, "drover %s: %s\n", v.name, msg)
	return exitAPI
}

// wait waits for task st.ID to end, up to timeout (0: no limit), prints its
// final status and returns the exit code for it.
func (v *verb) wait(ctx context.Context, c *client.Client, st *task.Status, timeout time.Duration) int {
	if !st.State.Terminal() {
		wctx := ctx
		if timeout > 0 {
			var cancel context.CancelFunc
			wctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		last, err := c.Wait(wctx, st.ID, client.WaitOptions{})
		switch {
		case err == nil:
			st = last
		case ctx.Err() != nil:
			state := st.State
			if last != nil {
				state = last.State
			}
			if state != "" {
				fmt.Fprintf(v.stderr, "drover %s: interrupted; task %s is still %s\n", v.name, st.ID, state)
			} else {
				fmt.Fprintf(v.stderr, "drover %s: interrupted\n", v.name)
			}
			return exitInterrupted
		case errors.Is(err, context.DeadlineExceeded):
			if last != nil {
				v.printStatus(last)
				fmt.Fprintf(v.stderr, "drover %s: task %s is still %s after %s\n", v.name, st.ID, last.State, timeout)
			} else {
				fmt.Fprintf(v.stderr, "drover %s: no answer about task %s within %s\n", v.name, st.ID, timeout)
			}
			return exitWaitTimeout
		default:
			return v.fail(err)
		}
	}
	if code := v.printStatus(st); code != exitOK {
		return code
	}
	switch st.State {
	case task.Failed, task.Cancelled:
		return exitTaskFailed
	}
	return exitOK
}

// printStatus prints one status document: the API's JSON with --json, a
// compact block otherwise.
func (v *verb) printStatus(st *task.Status) int {
	if v.json {
		return v.printJSON(st)
	}
	writeStatus(v.stdout, st, time.Now())
	return exitOK
}

// printJSON prints the body of the last API response indented, exactly as
// the API sent it otherwise; fallback is encoded instead if there was none.
func (v *verb) printJSON(fallback any) int {
	var buf bytes.Buffer
	if raw := bytes.TrimSpace(v.rec.last()); len(raw) == 0 || json.Indent(&buf, raw, "", "  ") != nil {
		buf.Reset()
		b, err := json.MarshalIndent(fallback, "", "  ")
		if err != nil {
			fmt.Fprintf(v.stderr, "drover %s: encode JSON: %v\n", v.name, err)
			return exitAPI
		}
		buf.Write(b)
	}
	buf.WriteByte('\n')
	v.stdout.Write(buf.Bytes())
	return exitOK
}

// writeStatus writes st as a compact block:
//
//	01JD3...  echo  succeeded  attempt 1/3  12ms
//	result: {"x":1}
func writeStatus(w io.Writer, st *task.Status, now time.Time) {
	head := []string{st.ID, st.Function}
	if st.Queue != "" && st.Queue != task.DefaultQueue {
		head = append(head, "queue "+st.Queue)
	}
	head = append(head, string(st.State), fmt.Sprintf("attempt %d/%d", st.Attempt, st.MaxAttempts))
	switch {
	case !st.FinishedAt.IsZero():
		from := st.CreatedAt
		if !st.StartedAt.IsZero() {
			from = st.StartedAt
		}
		head = append(head, roundDuration(st.FinishedAt.Sub(from)))
	case !st.CreatedAt.IsZero():
		head = append(head, "age "+age(now, st.CreatedAt))
	}
	fmt.Fprintln(w, strings.Join(head, "  "))
	if st.Runner != "" && !st.State.Terminal() {
		fmt.Fprintf(w, "runner: %s\n", st.Runner)
	}
	if len(st.Requires) > 0 {
		line := "requires: " + requiresText(st.Requires)
		if len(st.Matched) > 0 {
			line += "  (matched " + st.Matched.String() + " on " + orDash(st.Runner) + ")"
		}
		fmt.Fprintln(w, line)
	}
	if st.Waiting != "" {
		fmt.Fprintf(w, "waiting: %s\n", st.Waiting)
	}
	if st.State == task.Retrying && !st.NextAttemptAt.IsZero() {
		fmt.Fprintf(w, "next attempt: in %s\n", roundDuration(max(st.NextAttemptAt.Sub(now), 0)))
	}
	if st.Error != "" {
		fmt.Fprintf(w, "error: %s\n", st.Error)
	}
	if len(st.Result) > 0 {
		var buf bytes.Buffer
		if json.Compact(&buf, st.Result) != nil {
			buf.Reset()
			buf.Write(st.Result)
		}
		fmt.Fprintf(w, "result: %s\n", buf.Bytes())
	}
	if st.ResultRef != "" {
		fmt.Fprintf(w, "result_ref: %s\n", st.ResultRef)
	}
	if st.Group != nil {
		fmt.Fprintf(w, "group: %s member %d\n", st.Group.ID, st.Group.Index)
	}
	if st.CallbackOf != "" {
		fmt.Fprintf(w, "callback of group: %s\n", st.CallbackOf)
	}
	if st.Previous != "" {
		fmt.Fprintf(w, "previous: %s\n", st.Previous)
	}
	if st.Next != "" {
		fmt.Fprintf(w, "next: %s\n", st.Next)
	}
}

// readArgs returns the args-json argument, read from standard input when it
// is "-", after checking that it is JSON.
func readArgs(arg string) (json.RawMessage, error) {
	b := []byte(arg)
	if arg == "-" {
		var err error
		if b, err = io.ReadAll(stdin); err != nil {
			return nil, fmt.Errorf("read args from standard input: %w", err)
		}
		if len(bytes.TrimSpace(b)) == 0 {
			return nil, errors.New("no args on standard input")
		}
	}
	if json.Valid(b) {
		return json.RawMessage(b), nil
	}
	var x any
	err := json.Unmarshal(b, &x)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		err = fmt.Errorf("%w at byte %d", err, se.Offset)
	}
	return nil, fmt.Errorf("args are not valid JSON: %v (a string needs its quotes: '\"text\"')", err)
}

// roundDuration formats d to a precision that suits its size: 12ms, 1.5s,
// 2m3s.
func roundDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

// age formats the time since t in one unit: 45s, 12m, 5h, 3d.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := max(now.Sub(t), 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
}

// oneLine returns the first line of s, cut to n runes.
func oneLine(s string, n int) string {
	s, _, cut := strings.Cut(strings.TrimSpace(s), "\n")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	if cut {
		return s + " …"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// recorder is an http.RoundTripper that keeps the body of the last 2xx
// response, so that --json can print the document as the API sent it
// rather than as this binary's version of task.Status re-encodes it.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	body []byte
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err != nil || resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.body = b
	r.mu.Unlock()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, nil
}

func (r *recorder) last() []byte {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.body
}

// splitRequirement splits a --require value at its constraint:
// "python>=3.10" is python and ">=3.10", "gpu" is gpu and "".
func splitRequirement(s string) (name, constraint string) {
	if i := strings.IndexAny(s, "<>=!"); i >= 0 {
		return strings.TrimSpace(s[:i]), strings.TrimSpace(s[i:])
	}
	return strings.TrimSpace(s), ""
}

// requiresText spells requirements for people: "gpu python>=3.10".
func requiresText(r task.Requires) string {
	return strings.ReplaceAll(r.String(), ";", " ")
}
