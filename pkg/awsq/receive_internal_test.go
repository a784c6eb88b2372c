package awsq

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// silentSQS returns an SQS client of a server that takes every request
// and never answers, and the server's URL; the server stops with t.
func silentSQS(t *testing.T) (*sqs.Client, string) {
	hung := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hung:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(hung) })
	return sqs.New(sqs.Options{
		BaseEndpoint: aws.String(srv.URL), Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("x", "y", ""),
		Retryer:     aws.NopRetryer{},
	}), srv.URL
}

// TestReceiveHungCall: a ReceiveMessage call that never gets an answer
// (the server took the request and went silent) is abandoned
// receiveMargin after its long poll, with an error naming the queue,
// instead of stopping its caller for good; a caller's own cancellation
// is still reported as such.
func TestReceiveHungCall(t *testing.T) {
	client, url := silentSQS(t)
	old := receiveMargin
	receiveMargin = time.Second
	defer func() { receiveMargin = old }()

	r := &receiver{client: client, queueURL: url + "/123456789012/q"}
	done := make(chan error, 1)
	go func() {
		_, err := r.receiveWithin(context.Background(), 1, 0)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || errors.Is(err, context.Canceled) {
			t.Fatalf("hung receive: %v, want an error of its own", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a receive whose call never returns did not give up")
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, err := r.receiveWithin(ctx, 1, 20*time.Second)
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled receive: %v, want context.Canceled", err)
	}
}

// TestBatchAcksDoNotWait: acks of deliveries taken for a batch
// (ReceiveBatch, the collector's) return before their delete is answered,
// so a loop of them shares DeleteMessageBatch calls; those taken by
// ReceiveNow (a runner worker's) wait for it. The server here never
// answers.
func TestBatchAcksDoNotWait(t *testing.T) {
	client, url := silentSQS(t)
	a := newAcker(client, url+"/123456789012/q")
	acked := make(chan bool, 1)
	go func() {
		for i := range 50 {
			a.ackHandle(strconv.Itoa(i), "h"+strconv.Itoa(i), false)()
		}
		acked <- true
	}()
	select {
	case <-acked:
	case <-time.After(20 * time.Second):
		t.Fatal("a loop of batch acks waited for deletes that are never answered")
	}
	waiting := make(chan bool, 1)
	go func() {
		a.ackHandle("w", "hw", true)()
		waiting <- true
	}()
	select {
	case <-waiting:
		t.Fatal("a worker's ack returned before its delete was answered")
	case <-time.After(2 * time.Second):
	}
}
