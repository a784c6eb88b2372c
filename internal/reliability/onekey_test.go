package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gocloud.dev/gcerrors"
	"gocloud.dev/pubsub"
	"gocloud.dev/pubsub/driver"

	"github.com/droverhq/drover/functions/dispatch/api"
	"github.com/droverhq/drover/internal/awstest"
	"github.com/droverhq/drover/pkg/memq"
	"github.com/droverhq/drover/pkg/task"
)

// claimantPause is how long the first claimant of the key is stalled
// between its claim and its status write.
const claimantPause = 30 * time.Second

// oneKeyRun is what TestOneKeySlowClaimant needs of a backend.
type oneKeyRun struct {
	url     string
	store   *task.Store
	pending func() int
	paused  func() bool // the pause happened (else the test proves nothing)
}

// TestOneKeySlowClaimant is acceptance 2 of the correctness issue: 100
// concurrent submits with one idempotency key while the request that
// claimed it first is stalled for 30 s between its claim and its status
// write make one task and one message, and every request is answered
// with that task; a replay once the task's status is gone (evicted)
// still returns it and enqueues nothing.
func TestOneKeySlowClaimant(t *testing.T) {
	if testing.Short() {
		t.Skip("stalls a request for 30 s")
	}
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		oneKey(t, embeddedOneKey(t))
	})
	t.Run("moto", func(t *testing.T) {
		if moto == nil {
			t.Skip(skipAWSNote)
		}
		t.Parallel()
		oneKey(t, motoOneKey(t))
	})
}

func oneKey(t *testing.T, b oneKeyRun) {
	start := time.Now()
	body := []byte(`{"function":"rel-echo","args":{"k":1},"idempotency_key":"one-slow-key"}`)
	var wg sync.WaitGroup
	ids := make([]string, 100)
	codes := make([]int, 100)
	for i := range 100 {
		wg.Go(func() {
			code, _, raw := post(t, b.url, "/v1/tasks", "application/json", body, nil)
			codes[i] = code
			var st task.Status
			if json.Unmarshal(raw, &st) == nil {
				ids[i] = st.ID
			}
			if code != http.StatusAccepted {
				t.Errorf("submit %d: %d %s", i, code, raw)
			}
		})
	}
	wg.Wait()
	if !b.paused() {
		t.Fatal("the first claimant was never paused: the test proves nothing")
	}
	distinct := map[string]bool{}
	for _, id := range ids {
		distinct[id] = true
	}
	page, _, err := b.store.List(context.Background(), task.ListQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	msgs := b.pending()
	if len(distinct) != 1 || len(page) != 1 || msgs != 1 {
		t.Fatalf("one key, first claimant paused %s: %d distinct IDs, %d tasks stored, %d messages; want 1, 1, 1", claimantPause, len(distinct), len(page), msgs)
	}
	// The status goes (expiry, the cap): the key still names the task.
	first := page[0].ID
	if err := b.store.DeleteMany(context.Background(), []string{first}); err != nil {
		t.Fatal(err)
	}
	code, _, raw := post(t, b.url, "/v1/tasks", "application/json", body, nil)
	var again task.Status
	_ = json.Unmarshal(raw, &again)
	if code != http.StatusAccepted || again.ID != first || b.pending() != 1 {
		t.Fatalf("replay after the status was evicted: %d %s, %d messages; want 202 with %s, 1 message", code, raw, b.pending(), first)
	}
	t.Logf("100 submits, one key, first claimant paused %s: 1 task (%s), 1 message; replay after eviction → %s; %s", claimantPause, first, again.ID, time.Since(start).Round(time.Second))
}

// embeddedOneKey serves the API over memq and memstore, its task topic
// stalling the first send for claimantPause (and ignoring its context,
// as a stalled process would).
func embeddedOneKey(t *testing.T) oneKeyRun {
	ctx := context.Background()
	q := fmt.Sprintf("rel-onekey-%d", memSeq.Add(1))
	inner, err := pubsub.OpenTopic(ctx, "memq://"+q)
	if err != nil {
		t.Fatal(err)
	}
	pt := &pausingTopic{inner: inner, pause: claimantPause}
	tasks := task.NewTopic(pubsub.NewTopic(pt, nil), "paused://"+q)
	store, err := task.OpenStore(ctx, fmt.Sprintf("memstore://rel-onekey-%d/id?expiry_field=expires_at", memSeq.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	archive, err := task.OpenArchive(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(tasks, archive, store, testLogger(), api.Config{SendTimeout: 2 * claimantPause}))
	t.Cleanup(func() {
		srv.Close()
		_ = tasks.Shutdown(ctx)
		_ = inner.Shutdown(ctx)
		memq.Delete(q)
	})
	return oneKeyRun{url: srv.URL, store: store, pending: func() int { return memq.Stats(q).Len() }, paused: func() bool { return pt.paused.Load() }}
}

// pausingTopic is a pubsub driver that forwards to another topic, the
// first batch after a pause.
type pausingTopic struct {
	inner  *pubsub.Topic
	pause  time.Duration
	once   sync.Once
	paused atomic.Bool
}

func (p *pausingTopic) SendBatch(ctx context.Context, ms []*driver.Message) error {
	p.once.Do(func() {
		time.Sleep(p.pause)
		p.paused.Store(true)
	})
	for _, m := range ms {
		if err := p.inner.Send(ctx, &pubsub.Message{Body: m.Body}); err != nil {
			return err
		}
	}
	return nil
}
func (*pausingTopic) IsRetryable(error) bool             { return false }
func (*pausingTopic) As(any) bool                        { return false }
func (*pausingTopic) ErrorAs(error, any) bool            { return false }
func (*pausingTopic) ErrorCode(error) gcerrors.ErrorCode { return gcerrors.Unknown }
func (*pausingTopic) Close() error                       { return nil }

// motoOneKey runs drover dispatch against moto behind a proxy that holds
// the answer to the first claim of an idempotency key (a DynamoDB
// conditional PutItem of a key: document) for claimantPause: the claim is
// made, its dispatcher stalled.
func motoOneKey(t *testing.T) oneKeyRun {
	var held atomic.Bool
	thr := &awstest.ThrottleConfig{MinDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond,
		HoldResponse: func(op string, body []byte, status int) {
			if op == "DynamoDB_20120810.PutItem" && status == http.StatusOK && bytes.Contains(body, []byte(`"key:`)) && held.CompareAndSwap(false, true) {
				time.Sleep(claimantPause)
			}
		}}
	e := motoBackend{}.newEnv(t, envOpts{Visibility: 5 * time.Second, Throttle: thr}).(*motoEnv)
	return oneKeyRun{url: e.DispatchURL(), store: e.Store(), pending: func() int { return e.Pending(t) }, paused: held.Load}
}
