package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/pkg/task"
)

// fakeDispatcher stands in for a dispatcher: it queues one echo task and
// reports it succeeded on the first long poll.
func fakeDispatcher() *httptest.Server {
	const id = "01JD3V8ZQ6B1Y4T0KX9M2N5P7R"
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/tasks", func(w http.ResponseWriter, r *http.Request) {
		var spec task.Spec
		if err := json.NewDecoder(r.Body).Decode(&spec); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Location", "/v1/tasks/"+id)
		w.WriteHeader(http.StatusAccepted)
		json.NewEncoder(w).Encode(task.Status{ID: id, Function: spec.Function, Queue: "default",
			State: task.Queued, MaxAttempts: 3, CreatedAt: created})
	})
	mux.HandleFunc("GET /v1/tasks/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != id {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"title":"Not Found","status":404,"detail":"no task %s"}`, r.PathValue("id"))
			return
		}
		json.NewEncoder(w).Encode(task.Status{ID: id, Function: "echo", Queue: "default",
			State: task.Succeeded, Attempt: 1, MaxAttempts: 3, CreatedAt: created,
			Result: json.RawMessage(`{"x":1}`)})
	})
	return httptest.NewServer(mux)
}

func Example() {
	srv := fakeDispatcher() // in real use, the dispatcher's URL
	defer srv.Close()

	ctx := context.Background()
	c := client.New(srv.URL, client.WithAPIKey("secret"))

	st, err := c.Submit(ctx, task.Spec{Function: "echo", Args: json.RawMessage(`{"x":1}`)})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("submitted:", st.State)

	st, err = c.Wait(ctx, st.ID, client.WaitOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s after %d attempt(s): %s\n", st.State, st.Attempt, st.Result)

	_, err = c.Get(ctx, "01JD3V8ZQ6B1Y4T0KX9M2N5P7S")
	fmt.Println("not found:", client.IsNotFound(err))
	fmt.Println(err)
	// Output:
	// submitted: queued
	// succeeded after 1 attempt(s): {"x":1}
	// not found: true
	// 404 Not Found: no task 01JD3V8ZQ6B1Y4T0KX9M2N5P7S
}
