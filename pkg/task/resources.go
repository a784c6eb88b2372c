package task

import (
	"context"
	"log/slog"
	"time"
)

// Resources are what a Drover process opens: its topics, archive and
// status store. Each part's main opens those it needs.
type Resources struct {
	Tasks, Events *Topic
	// Queues, if set, are the declared task queues (Tasks, if set too,
	// is one of them and closed with them).
	Queues  *Queues
	Archive *Archive
	Store   *Store
}

// Close flushes and closes the resources that are set, within a fresh
// 10s bound; log receives what fails.
func (r *Resources) Close(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r.Queues != nil {
		if err := r.Queues.Shutdown(ctx); err != nil {
			log.Warn("could not flush a tasks queue", "err", err)
		}
	}
	for _, t := range []*Topic{r.Tasks, r.Events} {
		if t != nil && (r.Queues == nil || t != r.Queues.Default()) {
			if err := t.Shutdown(ctx); err != nil {
				log.Warn("could not flush a topic", "topic", t.url, "err", err)
			}
		}
	}
	if r.Archive != nil {
		_ = r.Archive.Close()
	}
	if r.Store != nil {
		if err := r.Store.Close(); err != nil {
			log.Error("could not save the status store", "err", err)
		}
	}
}
