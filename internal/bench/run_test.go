package bench

import (
	"context"
	"testing"
	"time"

	"github.com/droverhq/drover/internal/embedded"
)

// TestRunEmbedded runs a tiny bench on each embedded durability, as
// `drover bench` and `make bench-peers` do: every task sent completes,
// none fails or stays unanswered. (The bench's runner configuration is
// built in code, not parsed from the environment, so a new runner setting
// without a usable zero value broke `drover bench` without any test
// failing: DROVER_PRIORITY="".)
func TestRunEmbedded(t *testing.T) {
	for _, d := range []string{embedded.Memory, embedded.Durable} {
		t.Run(d, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			rep, err := Run(ctx, Options{Durability: d, DataDir: t.TempDir(), Tasks: 500, Rates: []int{50}, Duration: time.Second, Drain: 3 * time.Minute, SkipSteady: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Phases) == 0 {
				t.Fatal("no phases")
			}
			for _, p := range rep.Phases {
				if p.Sent == 0 || p.Completed != p.Sent || p.Failed != 0 || p.Unanswered != 0 || p.Errors != 0 {
					t.Errorf("phase %s: sent %d completed %d failed %d unanswered %d errors %d", p.Name, p.Sent, p.Completed, p.Failed, p.Unanswered, p.Errors)
				}
			}
		})
	}
}
