package runner

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/droverhq/drover/pkg/task"
)

// Handler runs one attempt of a task. It must return when ctx is done: ctx
// carries the task's timeout and is cancelled when the task is cancelled or
// the runner shuts down. An error wrapping task.ErrPermanent fails the task
// at once; any other error is retried while attempts remain.
type Handler interface {
	Handle(ctx context.Context, t *task.Task) (task.Result, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(context.Context, *task.Task) (task.Result, error)

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, t *task.Task) (task.Result, error) {
	return f(ctx, t)
}

// Mux maps function names to handlers, like an http.ServeMux.
type Mux struct {
	mu       sync.RWMutex
	handlers map[string]Handler
}

// NewMux returns an empty Mux.
func NewMux() *Mux { return &Mux{handlers: map[string]Handler{}} }

// Handle registers h under name. Registering a name twice is a wiring bug
// and panics.
func (m *Mux) Handle(name string, h Handler) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h == nil {
		panic(fmt.Sprintf("runner: nil handler for function %q", name))
	}
	if _, dup := m.handlers[name]; dup {
		panic(fmt.Sprintf("runner: function %q registered twice", name))
	}
	m.handlers[name] = h
}

// HandleFunc registers f under name.
func (m *Mux) HandleFunc(name string, f func(context.Context, *task.Task) (task.Result, error)) {
	m.Handle(name, HandlerFunc(f))
}

// Handler returns the handler registered under name, if any.
func (m *Mux) Handler(name string) (Handler, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	h, ok := m.handlers[name]
	return h, ok
}

// Functions lists the registered names, sorted.
func (m *Mux) Functions() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	names := make([]string, 0, len(m.handlers))
	for n := range m.handlers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
