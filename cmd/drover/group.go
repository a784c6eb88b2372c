package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/pkg/task"
)

// The group verbs: drover group submit|status|wait|cancel.
func groupCommand() *command {
	return &command{
		summary: "groups of tasks with a callback: group submit <file.json> | status <id> | wait <id> | cancel <id>",
		run:     runGroup,
	}
}

func runGroup(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "Usage: drover group submit <file.json> [--wait] | status <id> [--members N] | wait <id> [--timeout 30m] | cancel <id>")
		return exitUsage
	}
	switch args[0] {
	case "submit":
		return runGroupSubmit(ctx, args[1:], stdout, stderr)
	case "status":
		return runGroupStatus(ctx, args[1:], stdout, stderr)
	case "wait":
		return runGroupWait(ctx, args[1:], stdout, stderr)
	case "cancel":
		return runGroupCancel(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "drover group: unknown verb %q (submit, status, wait, cancel)\n", args[0])
	return exitUsage
}

// runGroupSubmit submits the group in a JSON file ("-": standard input):
// {"tasks": [...], "then": {...}, "on_failure": "fail" | "continue"}.
func runGroupSubmit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	v := newVerb("group submit", "group submit <file.json | -> [flags]", stdout, stderr)
	wait := v.fs.Bool("wait", false, "wait until the group ends, showing its progress")
	timeout := v.fs.Duration("timeout", 0, "with --wait: give up after this long (0: no limit)")
	pos, code, ok := v.parse(args, 1, 1)
	if !ok {
		return code
	}
	var raw []byte
	var err error
	if pos[0] == "-" {
		raw, err = io.ReadAll(stdin)
	} else {
		raw, err = os.ReadFile(pos[0])
	}
	if err != nil {
		return v.usageError("%v", err)
	}
	var spec task.GroupSpec
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		return v.usageError("%s: not a group (want {\"tasks\": [...], \"then\": {...}}): %v", pos[0], err)
	}
	if check := spec; check.Normalize() != nil {
		return v.usageError("%s: %v", pos[0], check.Normalize())
	}
	c, code, ok := v.client()
	if !ok {
		return code
	}
	g, err := c.SubmitGroup(ctx, spec)
	if err != nil {
		return v.fail(err)
	}
	if !*wait {
		if v.json {
			return v.printJSON(g)
		}
		fmt.Fprintf(stdout, "%s  %s  %d members", g.ID, g.State, g.Size)
		if g.Callback != "" {
			fmt.Fprintf(stdout, "  callback %s", g.Callback)
		}
		fmt.Fprintln(stdout)
		return exitOK
	}
	fmt.Fprintf(stderr, "submitted group %s (%d members), waiting for it to end…\n", g.ID, g.Size)
	return v.waitGroup(ctx, c, g.ID, *timeout)
}

func runGroupStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	v := newVerb("group status", "group status <id> [flags]", stdout, stderr)
	members := v.fs.Int("members", 0, "also list this many members, in index order")
	cursor := v.fs.Int("cursor", 0, "with --members: start at this member index")
	pos, code, ok := v.parse(args, 1, 1)
	if !ok {
		return code
	}
	if *members < 0 || *members > 1000 || *cursor < 0 {
		return v.usageError("--members must be from 0 to 1000 and --cursor not negative")
	}
	c, code, ok := v.client()
	if !ok {
		return code
	}
	limit := *members
	if limit == 0 {
		limit = -1
	}
	g, err := c.Group(ctx, pos[0], client.GroupOptions{Cursor: *cursor, Limit: limit})
	if err != nil {
		return v.fail(err)
	}
	if v.json {
		return v.printJSON(g)
	}
	writeGroup(stdout, g)
	return exitOK
}

func runGroupWait(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	v := newVerb("group wait", "group wait <id> [flags]", stdout, stderr)
	timeout := v.fs.Duration("timeout", 30*time.Minute, "give up after this long (0: wait until interrupted)")
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
	return v.waitGroup(ctx, c, pos[0], *timeout)
}

func runGroupCancel(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	v := newVerb("group cancel", "group cancel <id> [flags]", stdout, stderr)
	pos, code, ok := v.parse(args, 1, 1)
	if !ok {
		return code
	}
	c, code, ok := v.client()
	if !ok {
		return code
	}
	g, err := c.CancelGroup(ctx, pos[0])
	if err != nil {
		return v.fail(err)
	}
	if v.json {
		return v.printJSON(g)
	}
	writeGroup(stdout, g)
	return exitOK
}

// waitGroup waits for group id to end, printing its progress to stderr
// whenever it changes, then its final document; the exit code is 0 if it
// succeeded, 1 if it failed or was cancelled.
func (v *verb) waitGroup(ctx context.Context, c *client.Client, id string, timeout time.Duration) int {
	wctx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	last := ""
	g, err := c.WaitGroup(wctx, id, client.WaitGroupOptions{Progress: func(g *task.Group) {
		if line := progressLine(g); line != last {
			fmt.Fprintf(v.stderr, "%s  %s\n", time.Now().Format("15:04:05"), line)
			last = line
		}
	}})
	switch {
	case err == nil:
	case ctx.Err() != nil:
		fmt.Fprintf(v.stderr, "drover %s: interrupted; group %s is still running\n", v.name, id)
		return exitInterrupted
	case errors.Is(err, context.DeadlineExceeded):
		fmt.Fprintf(v.stderr, "drover %s: group %s has not ended after %s\n", v.name, id, timeout)
		return exitWaitTimeout
	default:
		return v.fail(err)
	}
	if v.json {
		b, _ := json.MarshalIndent(g, "", "  ")
		fmt.Fprintf(v.stdout, "%s\n", b)
	} else {
		writeGroup(v.stdout, g)
	}
	if g.State != task.GroupSucceeded {
		return exitTaskFailed
	}
	return exitOK
}

// progressLine is one line of a group's progress: done of size, and the
// members by state.
func progressLine(g *task.Group) string {
	var states []string
	for st, n := range g.Counts {
		states = append(states, fmt.Sprintf("%s %d", st, n))
	}
	sort.Strings(states)
	line := fmt.Sprintf("%s: %d/%d members ended (%s)", g.State, g.Done, g.Size, strings.Join(states, ", "))
	if g.Callback != "" {
		line += ", callback " + string(g.CallbackState)
	}
	return line
}

// writeGroup writes a group's document as text.
func writeGroup(w io.Writer, g *task.Group) {
	fmt.Fprintf(w, "group %s  %s  %d members  on_failure %s  age %s\n", g.ID, g.State, g.Size, g.OnFailure, age(time.Now(), g.CreatedAt))
	fmt.Fprintln(w, progressLine(g))
	if g.Callback != "" {
		fmt.Fprintf(w, "callback: %s  %s\n", g.Callback, g.CallbackState)
	}
	for _, m := range g.Members {
		note := ""
		if m.Error != "" {
			note = "  " + oneLine(m.Error, 60)
		}
		fmt.Fprintf(w, "  %5d  %s  %s  %s%s\n", m.Group.Index, m.ID, m.Function, m.State, note)
	}
	if g.NextCursor > 0 {
		fmt.Fprintf(w, "more: drover group status %s --members %d --cursor %d\n", g.ID, len(g.Members), g.NextCursor)
	}
}
