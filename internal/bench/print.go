package bench

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// Print writes the report as tables for people.
func (r *Report) Print(w io.Writer) {
	backend := r.Backend
	if r.Durability != "" {
		backend += " (" + r.Durability + ")"
	}
	fmt.Fprintf(w, "drover bench: backend %s, %d runners × %d, %d clients, GOMAXPROCS %d", backend, r.Runners, r.Concurrency, r.Clients, r.GOMAXPROCS)
	if r.Linger > 0 {
		fmt.Fprintf(w, ", clients linger %s", r.Linger)
	}
	fmt.Fprintln(w)
	if r.Config != nil {
		fmt.Fprintf(w, "  tasks %s, events %s, status %s\n", r.Config["tasks_topic"], r.Config["events_topic"], r.Config["status"])
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tsent\tcompleted\tunanswered\terrors\ttasks/s\tenqueue/s\ttasks/request\tcpu s/1k\tRSS MiB\t")
	for _, p := range r.Phases {
		enq, per := "-", "-"
		if p.Enqueue > 0 {
			enq = fmt.Sprintf("%.0f", p.Enqueue)
		}
		if p.Requests > 0 {
			per = fmt.Sprintf("%.1f", float64(p.Sent+p.Errors)/float64(p.Requests))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.0f\t%s\t%s\t%.3f\t%.0f\t\n", p.Name, p.Sent, p.Completed, p.Unanswered, p.Errors, p.Throughput, enq, per, p.CPUPer1k, float64(p.RSS)/(1<<20))
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(w, "latency from each task's due time (open loop) or submit (closed loop):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tto\tmin\tavg\tp50\tp99\tp99.9\tmax\t")
	for _, p := range r.Phases {
		for _, l := range []struct {
			to string
			l  Latency
		}{{"running", p.Running}, {"terminal", p.Terminal}, {"(accepted)", p.Accepted}, {"(collected)", p.Collected}} {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", p.Name, l.to, ms(l.l.Min), ms(l.l.Mean), ms(l.l.P50), ms(l.l.P99), ms(l.l.P999), ms(l.l.Max))
		}
	}
	tw.Flush()
	fmt.Fprintln(w, "(accepted): due → the API's created_at (client, HTTP, dispatch); (collected): the runner's finished_at → the collector's write (events queue, collector)")
	fmt.Fprintf(w, "\npeak RSS (VmHWM): %.0f MiB\n", float64(r.PeakRSS)/(1<<20))
	if r.Requests != nil {
		printRequests(w, "requests to the AWS endpoint per completed task, all Drover phases (idle polls and heartbeats included):", r.Requests)
	}
	if r.SDK != nil {
		fmt.Fprintf(w, "\nraw SDK, one SQS hop: %d messages, %d senders (SendMessageBatch 10), %d receivers (ReceiveMessage 10 + DeleteMessageBatch): %.0f msgs/s (send alone %.0f/s)\n",
			r.SDK.Messages, r.SDK.Senders, r.SDK.Receivers, r.SDK.PerSecond, r.SDK.SendPerSecond)
		fmt.Fprintf(w, "drover / raw one hop: %.0f%% (steady tasks/s over raw msgs/s; a Drover task makes two queue hops plus status writes)\n", 100*r.Ratio)
	}
	if p := r.SamePath; p != nil {
		fmt.Fprintf(w, "\nraw SDK, a Drover task's same path: %d tasks, %d senders (SendMessageBatch 10 + PutItem create), %d workers (ReceiveMessage 10, BatchGetItem state, SendMessageBatch outcome, DeleteMessageBatch), %d collectors (ReceiveMessage 10, BatchGetItem, PutItem on revision, DeleteMessageBatch): %.0f tasks/s (enqueue alone %.0f/s)\n",
			p.Tasks, p.Senders, p.Workers, p.Collectors, p.PerSecond, p.SendPerSecond)
		fmt.Fprintf(w, "drover / raw same path: %.0f%% (steady tasks/s over raw tasks/s)\n", 100*r.RatioSamePath)
		if r.SamePathRequests != nil {
			printRequests(w, "raw same path, requests per task:", r.SamePathRequests)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	fmt.Fprintln(w, "\ntargets (embedded): burn-down ≥ 30000 tasks/s; p99 submit→terminal ≤ 5ms at 15000/s and ≤ 20ms at 100/s; moto ≥ 80% of the raw SDK")
}

func ms(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	case d < 10*time.Second:
		return fmt.Sprintf("%.0fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

// printRequests writes per-operation request counts per task.
func printRequests(w io.Writer, title string, r *Requests) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operation\trequests\tper task\tentries/request\tempty receives\t")
	per := func(n int64) float64 {
		if r.Tasks == 0 {
			return 0
		}
		return float64(n) / float64(r.Tasks)
	}
	for _, name := range r.Names() {
		c := r.Ops[name]
		empty, entries := "-", c.Entries
		if name == "sqs:ReceiveMessage" {
			empty, entries = fmt.Sprintf("%d", c.Empty), c.Received
		}
		fmt.Fprintf(tw, "%s\t%d\t%.3f\t%.1f\t%s\t\n", name, c.Requests, per(c.Requests), float64(entries)/float64(c.Requests), empty)
	}
	fmt.Fprintf(tw, "total (%d tasks)\t%d\t%.3f\t\t\t\n", r.Tasks, r.Total(), per(r.Total()))
	tw.Flush()
}
