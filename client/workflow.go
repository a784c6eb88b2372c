package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/droverhq/drover/pkg/task"
)

// SubmitGroup submits a group: its members run in parallel, and its
// callback (spec.Then), if any, once every member has ended, with the
// members' results in index order (docs/workflows.md). It returns the
// group's document with the first page of members.
func (c *Client) SubmitGroup(ctx context.Context, spec task.GroupSpec) (*task.Group, error) {
	body, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("encode group spec: %w", err)
	}
	var g task.Group
	if err := c.call(ctx, http.MethodPost, "/v1/groups", body, false, &g); err != nil {
		return nil, err
	}
	return &g, nil
}

// GroupOptions selects the page of members Group returns.
type GroupOptions struct {
	// Cursor is the index of the first member to return (a NextCursor).
	Cursor int
	// Limit is how many members to return: 0 takes the server's default
	// (100), a negative number none.
	Limit int
}

// Group returns group id's document: its state, its members' counts by
// state and one page of members in index order.
func (c *Client) Group(ctx context.Context, id string, opts GroupOptions) (*task.Group, error) {
	if id == "" {
		return nil, errors.New("client: empty group id")
	}
	q := url.Values{}
	if opts.Cursor > 0 {
		q.Set("cursor", strconv.Itoa(opts.Cursor))
	}
	switch {
	case opts.Limit < 0:
		q.Set("limit", "0")
	case opts.Limit > 0:
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	path := "/v1/groups/" + url.PathEscape(id)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var g task.Group
	if err := c.call(ctx, http.MethodGet, path, nil, true, &g); err != nil {
		return nil, err
	}
	return &g, nil
}

// WaitGroupOptions tunes WaitGroup.
type WaitGroupOptions struct {
	// Interval is the time between polls (1s).
	Interval time.Duration
	// Progress, if set, is called with the group's document after each
	// poll (members not included).
	Progress func(*task.Group)
}

// WaitGroup polls group id until it has ended (succeeded, failed or
// cancelled), and its callback too, returning the last document read.
func (c *Client) WaitGroup(ctx context.Context, id string, opts WaitGroupOptions) (*task.Group, error) {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	var last *task.Group
	for {
		g, err := c.Group(ctx, id, GroupOptions{Limit: -1})
		if err != nil {
			return last, err
		}
		last = g
		if opts.Progress != nil {
			opts.Progress(g)
		}
		if GroupEnded(g) {
			return g, nil
		}
		if err := sleep(ctx, opts.Interval); err != nil {
			return last, err
		}
	}
}

// GroupEnded reports whether nothing more will happen to g: it is not
// running and its callback, if any, has ended.
func GroupEnded(g *task.Group) bool {
	if g.State == task.GroupRunning {
		return false
	}
	if g.Callback != "" && !g.CallbackState.Terminal() {
		return false
	}
	if g.State == task.GroupCancelled || g.State == task.GroupFailed {
		// Members may still be finishing; the group's outcome is known.
		return g.Counts[task.Queued]+g.Counts[task.Running]+g.Counts[task.Retrying] == 0
	}
	return true
}

// CancelGroup cancels group id: its members that have not ended, its
// callback and the steps after it.
func (c *Client) CancelGroup(ctx context.Context, id string) (*task.Group, error) {
	if id == "" {
		return nil, errors.New("client: empty group id")
	}
	var g task.Group
	if err := c.call(ctx, http.MethodDelete, "/v1/groups/"+url.PathEscape(id), nil, false, &g); err != nil {
		return nil, err
	}
	return &g, nil
}
