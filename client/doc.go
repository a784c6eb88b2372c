// Package client is a Go client for the HTTP API of a Drover dispatcher: it
// submits tasks, reads and waits for their statuses, lists and cancels them,
// fetches results and lists runners. The drover command's client verbs
// (drover submit, status, wait, ls, cancel, runners) are built on it.
//
// Requests and responses use the types of [github.com/droverhq/drover/pkg/task]:
// a [task.Spec] goes in, a [task.Status] (the status document) comes out.
//
// # Connecting
//
// Create a [Client] with [New] and the dispatcher's base URL. When the
// dispatcher requires an API key (DROVER_API_KEYS), pass one with
// [WithAPIKey]; use [WithHTTPClient] for custom TLS, proxies or timeouts.
//
//	c := client.New("https://drover.example.com", client.WithAPIKey(key))
//
// # Submitting and waiting
//
// [Client.Submit] returns as soon as the task is queued. [Client.Wait]
// long-polls until the task is terminal: succeeded, failed or cancelled. A
// task that failed is not a Go error; look at the returned status.
//
//	st, err := c.Submit(ctx, task.Spec{Function: "echo", Args: json.RawMessage(`{"x":1}`)})
//	if err != nil {
//		return err
//	}
//	st, err = c.Wait(ctx, st.ID, client.WaitOptions{})
//	if err != nil {
//		return err
//	}
//	if st.State != task.Succeeded {
//		return fmt.Errorf("task %s %s: %s", st.ID, st.State, st.Error)
//	}
//
// Small results arrive inline in [task.Status].Result; a large one is stored
// by reference (ResultRef) and read with [Client.Result].
//
// # Errors
//
// A response other than 2xx is returned as an [*Error] decoded from the
// server's application/problem+json body; act on its Status, or use
// [IsNotFound] and [IsConflict]. A request that got no response returns an
// error naming the method and path. When ctx is cancelled or times out, the
// methods return ctx.Err() unwrapped.
//
// # Retries
//
// Requests that are safe to repeat (GET, including each long poll of Wait)
// are retried a few times, with a short jittered exponential backoff, on
// connection errors and on 502, 503 and 504. Submit and SubmitBatch are
// retried likewise only when every spec has an idempotency key, since the
// dispatcher then returns the first task rather than creating another.
// Cancel and Ready are never retried.
package client
