package memq

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gocloud.dev/pubsub"
	"gocloud.dev/pubsub/batcher"
	"gocloud.dev/pubsub/driver"
)

// BenchmarkSendReceiveAck moves b.N messages through the portable types:
// concurrent senders (batched by the topic), concurrent receivers acking
// each message (acks batched by the subscription).
func BenchmarkSendReceiveAck(b *testing.B) {
	const senders, receivers = 8, 8
	ctx := context.Background()
	name := uniqueName(b.Name())
	defer Delete(name)
	top := OpenTopic(name, &TopicOptions{BatcherOptions: batcher.Options{MaxBatchSize: 100, MaxHandlers: 4}})
	sub, err := OpenSubscription(name, &SubscriptionOptions{Wait: 10 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	body := []byte("hello, world")
	md := map[string]string{"label": "value"}

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	var toSend, toRecv atomic.Int64
	toSend.Store(int64(b.N))
	toRecv.Store(int64(b.N))
	for range senders {
		wg.Go(func() {
			for toSend.Add(-1) >= 0 {
				if err := top.Send(ctx, &pubsub.Message{Body: body, Metadata: md}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	for range receivers {
		wg.Go(func() {
			for toRecv.Add(-1) >= 0 {
				m, err := sub.Receive(ctx)
				if err != nil {
					b.Error(err)
					return
				}
				m.Ack()
			}
		})
	}
	wg.Wait()
	if err := sub.Shutdown(ctx); err != nil { // flush acks
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	b.StopTimer()
	top.Shutdown(ctx)
	if st := Stats(name); st.Len() != 0 {
		b.Fatalf("left over: %+v", st)
	}
}

// BenchmarkDriver moves b.N messages through the driver directly in
// batches of 100: SendBatch, ReceiveBatch, SendAcks.
func BenchmarkDriver(b *testing.B) {
	const batch = 100
	ctx := context.Background()
	name := uniqueName(b.Name())
	defer Delete(name)
	tp := &topic{q: getQueue(name)}
	s, err := newSubscription(tp.q, &SubscriptionOptions{})
	if err != nil {
		b.Fatal(err)
	}
	body := []byte("hello, world")
	md := map[string]string{"label": "value"}
	ms := make([]*driver.Message, batch)
	ids := make([]driver.AckID, 0, batch)

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for done := 0; done < b.N; done += batch {
		for i := range ms {
			ms[i] = &driver.Message{Body: body, Metadata: md}
		}
		if err := tp.SendBatch(ctx, ms); err != nil {
			b.Fatal(err)
		}
		got, err := s.ReceiveBatch(ctx, batch)
		if err != nil || len(got) != batch {
			b.Fatalf("ReceiveBatch = %d, %v", len(got), err)
		}
		ids = ids[:0]
		for _, m := range got {
			ids = append(ids, m.AckID)
		}
		if err := s.SendAcks(ctx, ids); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkDriverParallel sends, receives and acks one message at a time
// from GOMAXPROCS goroutines on one queue, to show lock contention.
func BenchmarkDriverParallel(b *testing.B) {
	ctx := context.Background()
	name := uniqueName(b.Name())
	defer Delete(name)
	tp := &topic{q: getQueue(name)}
	s, err := newSubscription(tp.q, &SubscriptionOptions{})
	if err != nil {
		b.Fatal(err)
	}
	body := []byte("hello, world")
	b.ReportAllocs()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		ms := make([]*driver.Message, 1)
		for pb.Next() {
			ms[0] = &driver.Message{Body: body}
			if err := tp.SendBatch(ctx, ms); err != nil {
				b.Error(err)
				return
			}
			got, err := s.ReceiveBatch(ctx, 1)
			if err != nil || len(got) != 1 {
				b.Errorf("ReceiveBatch = %d, %v", len(got), err)
				return
			}
			if err := s.SendAcks(ctx, []driver.AckID{got[0].AckID}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkWokenReceive: a receiver that waits on an empty queue and is
// woken by each send, as a runner worker is at a modest rate.
func BenchmarkWokenReceive(b *testing.B) {
	ctx := context.Background()
	name := uniqueName(b.Name())
	defer Delete(name)
	tp := &topic{q: getQueue(name)}
	s, err := newSubscription(tp.q, &SubscriptionOptions{Wait: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	body := []byte("hello, world")
	got := make(chan struct{})
	go func() {
		for range b.N {
			ms, err := s.ReceiveDirect(ctx, 1)
			if err != nil || len(ms) != 1 {
				b.Errorf("ReceiveDirect = %d, %v", len(ms), err)
				return
			}
			got <- struct{}{}
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := tp.SendDirect(ctx, [][]byte{body}, nil); err != nil {
			b.Fatal(err)
		}
		<-got
	}
}
