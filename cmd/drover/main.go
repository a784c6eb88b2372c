// Command drover is Drover's one binary: the embedded all-in-one (drover
// dev), each part as a long-lived process (dispatch, runner, collect), and
// the client verbs that talk to a dispatcher at DROVER_URL.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/droverhq/drover/internal/telemetry"
)

// command is one verb of the CLI.
type command struct {
	summary string
	// run executes the verb with the arguments after its name and returns
	// the process exit code.
	run func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() map[string]*command {
	cmds := map[string]*command{}
	for name, c := range serverCommands() {
		cmds[name] = c
	}
	for name, c := range clientCommands() {
		cmds[name] = c
	}
	for name, c := range benchCommands() {
		cmds[name] = c
	}
	cmds["group"] = groupCommand()
	return cmds
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	telemetry.Quiet()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout, cmds)
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "drover: unknown command %q\n\n", args[0])
		usage(stderr, cmds)
		return 2
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer, cmds map[string]*command) {
	fmt.Fprintln(w, "Usage: drover <command> [arguments]\n\nCommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'drover <command> -h' for a command's flags. Client commands talk to DROVER_URL (default http://127.0.0.1:8080).")
}
