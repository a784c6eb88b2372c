package reliability

import (
	"context"
	"net/url"
	"os"
	"syscall"

	"gocloud.dev/gcerrors"
	"gocloud.dev/pubsub"
	"gocloud.dev/pubsub/driver"

	"github.com/droverhq/drover/pkg/task"
)

// SchemeCrash is the pubsub scheme of CrashAfterOutcome topics:
// crashafter://?inner=<url-escaped topic URL>.
const SchemeCrash = "crashafter"

func init() {
	pubsub.DefaultURLMux().RegisterTopic(SchemeCrash, crashOpener{})
}

type crashOpener struct{}

// OpenTopicURL opens the inner topic and wraps it.
func (crashOpener) OpenTopicURL(ctx context.Context, u *url.URL) (*pubsub.Topic, error) {
	inner, err := pubsub.OpenTopic(ctx, u.Query().Get("inner"))
	if err != nil {
		return nil, err
	}
	return pubsub.NewTopic(&crashTopic{inner: inner}, nil), nil
}

// CrashURL returns the crashafter:// URL wrapping the topic at inner.
func CrashURL(inner string) string {
	return SchemeCrash + "://events?inner=" + url.QueryEscape(inner)
}

// crashTopic sends through inner and, once an outcome event (succeeded or
// failed) of attempt 1 of an FnCrashOnce task has been sent, kills its own
// process with SIGKILL: the runner dies after publishing the outcome and
// before acking the task message, as DESIGN.md's delivery rule allows.
type crashTopic struct{ inner *pubsub.Topic }

func (t *crashTopic) SendBatch(ctx context.Context, ms []*driver.Message) error {
	crash := false
	for _, m := range ms {
		if err := t.inner.Send(ctx, &pubsub.Message{Body: m.Body, Metadata: m.Metadata}); err != nil {
			return err
		}
		if e, _, err := task.DecodeEvent(m.Body); err == nil && e != nil &&
			e.Function == FnCrashOnce && e.Attempt == 1 && e.Phase.State().Terminal() {
			crash = true
		}
	}
	if crash {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // never returns: the ack must not happen
	}
	return nil
}

func (t *crashTopic) IsRetryable(error) bool                 { return false }
func (t *crashTopic) As(any) bool                            { return false }
func (t *crashTopic) ErrorAs(error, any) bool                { return false }
func (t *crashTopic) ErrorCode(err error) gcerrors.ErrorCode { return gcerrors.Code(err) }
func (t *crashTopic) Close() error                           { return t.inner.Shutdown(context.Background()) }
