package task

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Queues are the declared task queues, each its own topic: a task's
// queue decides which runners can take it. Dispatch and the collector
// (which enqueues workflow steps) publish through them; an undeclared
// queue has no topic.
type Queues struct {
	names  []string
	topics map[string]*Topic
}

// OneQueue returns the queues of a deployment with a single queue,
// "default", on t.
func OneQueue(t *Topic) *Queues {
	return &Queues{names: []string{DefaultQueue}, topics: map[string]*Topic{DefaultQueue: t}}
}

// NewQueues returns the queues with the given topics.
func NewQueues(topics map[string]*Topic) *Queues {
	q := &Queues{topics: topics}
	for n := range topics {
		q.names = append(q.names, n)
	}
	sortQueueNames(q.names)
	return q
}

// sortQueueNames sorts names with "default" first.
func sortQueueNames(names []string) {
	slices.SortFunc(names, func(a, b string) int {
		switch {
		case a == b:
			return 0
		case a == DefaultQueue:
			return -1
		case b == DefaultQueue:
			return 1
		}
		return strings.Compare(a, b)
	})
}

// Names returns the declared queues, "default" first.
func (q *Queues) Names() []string { return q.names }

// Topic returns the topic of the named queue, or nil if it is not declared.
func (q *Queues) Topic(name string) *Topic { return q.topics[name] }

// Default returns the default queue's topic (nil if none is declared).
func (q *Queues) Default() *Topic { return q.topics[DefaultQueue] }

// Check returns a *FieldError naming queue when it is not declared.
func (q *Queues) Check(field, queue string) error {
	if _, ok := q.topics[queue]; ok {
		return nil
	}
	return &FieldError{field, fmt.Sprintf("queue %q is not declared (declared: %s)", truncate([]byte(queue), 64), strings.Join(q.names, ", "))}
}

// MaxDelay is the longest delay queue's topic can keep (0 if undeclared).
func (q *Queues) MaxDelay(queue string) time.Duration {
	if t := q.topics[queue]; t != nil {
		return t.MaxDelay()
	}
	return 0
}

// SendAll publishes each body on the topic of its queue (queues[i]), as
// Topic.SendAll does, returning the index of each body that failed with
// its error.
func (q *Queues) SendAll(ctx context.Context, queues []string, bodies [][]byte, delays []time.Duration) map[int]error {
	byQueue := map[string][]int{}
	for i, name := range queues {
		byQueue[name] = append(byQueue[name], i)
	}
	var failed map[int]error
	fail := func(i int, err error) {
		if failed == nil {
			failed = map[int]error{}
		}
		failed[i] = err
	}
	if len(byQueue) == 1 {
		t := q.topics[queues[0]]
		if t == nil {
			for i := range bodies {
				fail(i, q.Check("queue", queues[0]))
			}
			return failed
		}
		return t.SendAll(ctx, bodies, delays)
	}
	type result struct {
		idx  []int
		errs map[int]error
	}
	out := make(chan result, len(byQueue))
	for name, idx := range byQueue {
		go func() {
			t := q.topics[name]
			if t == nil {
				errs := map[int]error{}
				for k := range idx {
					errs[k] = q.Check("queue", name)
				}
				out <- result{idx, errs}
				return
			}
			bs := make([][]byte, len(idx))
			var ds []time.Duration
			if delays != nil {
				ds = make([]time.Duration, len(idx))
			}
			for k, i := range idx {
				bs[k] = bodies[i]
				if delays != nil {
					ds[k] = delays[i]
				}
			}
			out <- result{idx, t.SendAll(ctx, bs, ds)}
		}()
	}
	for range byQueue {
		r := <-out
		for k, err := range r.errs {
			fail(r.idx[k], err)
		}
	}
	return failed
}

// Ping checks every queue's topic.
func (q *Queues) Ping(ctx context.Context) error {
	var errs []error
	for _, n := range q.names {
		if err := q.topics[n].Ping(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Depth sums the depths of the queues whose drivers tell it.
func (q *Queues) Depth(ctx context.Context) (int, bool, error) {
	total, any := 0, false
	for _, n := range q.names {
		d, ok, err := q.topics[n].Depth(ctx)
		if err != nil {
			return 0, true, err
		}
		total, any = total+d, any || ok
	}
	return total, any, nil
}

// Shutdown flushes and closes every queue's topic.
func (q *Queues) Shutdown(ctx context.Context) error {
	var errs []error
	for _, n := range q.names {
		if err := q.topics[n].Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// QueueURLs maps queue names to gocloud pubsub URLs: the value of
// DROVER_QUEUE_URLS, a JSON object ({"default": "awssqs://...", "gpu":
// "awssqs://..."}, as Terraform's queue_urls output writes it). On SQS
// one URL serves as both the topic and the subscription.
type QueueURLs map[string]string

// ParseQueueURLs reads a DROVER_QUEUE_URLS value; empty is none.
func ParseQueueURLs(s string) (QueueURLs, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var m QueueURLs
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("want a JSON object of queue names to URLs: %v", err)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("declares no queue")
	}
	for n, u := range m {
		if !namePattern.MatchString(n) {
			return nil, fmt.Errorf("%q is not a queue name (letters, digits and _.:- up to 128 characters)", truncate([]byte(n), 64))
		}
		if !strings.Contains(u, "://") {
			return nil, fmt.Errorf("queue %s: %q is not a URL", n, truncate([]byte(u), 64))
		}
	}
	return m, nil
}

// Names returns the queues of m, "default" first.
func (m QueueURLs) Names() []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sortQueueNames(names)
	return names
}

// OpenQueues opens the topic of every queue of urls.
func OpenQueues(ctx context.Context, urls QueueURLs) (*Queues, error) {
	topics := map[string]*Topic{}
	for _, n := range urls.Names() {
		t, err := OpenTopic(ctx, urls[n])
		if err != nil {
			for _, o := range topics {
				_ = o.Shutdown(ctx)
			}
			return nil, fmt.Errorf("queue %s: %w", n, err)
		}
		topics[n] = t
	}
	return NewQueues(topics), nil
}

// Priority modes of a runner serving several queues.
const (
	// Weighted takes from each queue in proportion to its weight, and
	// from the others when it is empty: no queue starves.
	Weighted = "weighted"
	// Strict takes from a queue only when every queue listed before it
	// is empty.
	Strict = "strict"
)

// QueueWeight is one queue a runner serves, with its weight.
type QueueWeight struct {
	Name   string
	Weight int
}

// ParseQueueWeights reads a DROVER_QUEUES list: queue names with optional
// weights, "critical:6,default:3,low:1" (a missing weight is 1), in
// priority order for the strict mode. Empty is "default".
func ParseQueueWeights(s string) ([]QueueWeight, error) {
	var out []QueueWeight
	seen := map[string]bool{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		// The weight is after the last ':' (a queue name may hold one).
		name, weight := item, 1
		if i := strings.LastIndexByte(item, ':'); i >= 0 {
			n, err := strconv.Atoi(strings.TrimSpace(item[i+1:]))
			if err != nil || n < 1 || n > 1000 {
				return nil, fmt.Errorf("%q: the weight must be a whole number from 1 to 1000", item)
			}
			name, weight = strings.TrimSpace(item[:i]), n
		}
		if !namePattern.MatchString(name) {
			return nil, fmt.Errorf("%q is not a queue name (letters, digits and _.:- up to 128 characters)", truncate([]byte(name), 64))
		}
		if seen[name] {
			return nil, fmt.Errorf("queue %s is listed twice", name)
		}
		seen[name] = true
		out = append(out, QueueWeight{name, weight})
	}
	if len(out) == 0 {
		out = []QueueWeight{{DefaultQueue, 1}}
	}
	return out, nil
}

// Declared returns the queues of a deployment from its settings: those
// of DROVER_QUEUE_URLS (urls, may be nil), with "default" at tasksURL
// (DROVER_TASKS_TOPIC) unless urls names it. Nil if neither declares
// any.
func Declared(urls QueueURLs, tasksURL string) QueueURLs {
	out := QueueURLs{}
	for n, u := range urls {
		out[n] = u
	}
	if _, ok := out[DefaultQueue]; !ok && tasksURL != "" {
		out[DefaultQueue] = tasksURL
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
