package lambdaedge

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/aws/aws-lambda-go/events"
)

// Record is one SQS message of a batch Lambda delivered, in the terms
// gocloud's awssqs subscription would have delivered it.
type Record struct {
	MessageID     string
	ReceiptHandle string
	// QueueURL is the queue's URL, derived from the record's
	// eventSourceARN (see QueueURLFromARN): with ReceiptHandle, it is what
	// ChangeMessageVisibility needs (awsq.NewLease).
	QueueURL string
	// Body is the message body; base64-decoded when the sender (gocloud's
	// awssqs topic) marked it with the "base64encoded" attribute.
	Body string
	// ReceiveCount is the ApproximateReceiveCount attribute: deliveries so
	// far, this one included.
	ReceiveCount int
	// Attributes are the message attributes with string values, decoded as
	// gocloud's awssqs subscription decodes them into
	// pubsub.Message.Metadata (keys hex-unescaped, values URL-unescaped,
	// "base64encoded" left out). System attributes other than the
	// receive count are not carried.
	Attributes map[string]string
}

// SQS adapts process to the SQS event source of Lambda. process gets the
// whole batch and returns the MessageIDs of the records it failed; those,
// and only those, come back after their visibility timeout (the rest are
// deleted). The event source mapping must have ReportBatchItemFailures in
// its FunctionResponseTypes: without it Lambda ignores the list and deletes
// the whole batch on success.
//
// The handler returns a partial batch response, and an error as well when
// every record failed: it is the same outcome for the messages (with
// ReportBatchItemFailures Lambda does not slow polling for it), but it
// shows in the function's Errors metric and logs, where a batch that
// failed whole (an outage, most likely) should be seen. A failed ID that
// is not in the batch is a bug: the whole batch is then reported failed,
// so that nothing is lost.
func SQS(process func(ctx context.Context, recs []Record) (failedMessageIDs []string)) func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	return func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		var resp events.SQSEventResponse
		if len(ev.Records) == 0 {
			return resp, nil
		}
		recs := make([]Record, 0, len(ev.Records))
		inBatch := make(map[string]bool, len(ev.Records))
		for _, m := range ev.Records {
			recs = append(recs, toRecord(m))
			inBatch[m.MessageId] = true
		}
		failed := process(ctx, recs)
		seen := make(map[string]bool, len(failed))
		for _, id := range failed {
			if !inBatch[id] {
				return failAll(ev, fmt.Errorf("sqs batch: process reported unknown message ID %q; failing the whole batch", id))
			}
			if seen[id] {
				continue
			}
			seen[id] = true
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: id})
		}
		if len(resp.BatchItemFailures) == len(ev.Records) {
			return resp, fmt.Errorf("sqs batch: all %d messages failed", len(ev.Records))
		}
		return resp, nil
	}
}

// failAll reports every record of ev failed.
func failAll(ev events.SQSEvent, err error) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	for _, m := range ev.Records {
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
	}
	return resp, err
}

// base64EncodedKey is the attribute gocloud's awssqs topic adds to a
// message whose body it base64-encoded.
const base64EncodedKey = "base64encoded"

func toRecord(m events.SQSMessage) Record {
	r := Record{
		MessageID:     m.MessageId,
		ReceiptHandle: m.ReceiptHandle,
		Body:          m.Body,
		Attributes:    map[string]string{},
	}
	r.QueueURL, _ = QueueURLFromARN(m.EventSourceARN)
	if n, err := strconv.Atoi(m.Attributes["ApproximateReceiveCount"]); err == nil {
		r.ReceiveCount = n
	}
	decode := false
	for k, a := range m.MessageAttributes {
		if a.StringValue == nil {
			continue
		}
		if k == base64EncodedKey {
			decode = true
			continue
		}
		v := *a.StringValue
		if u, err := url.PathUnescape(v); err == nil {
			v = u
		}
		r.Attributes[hexUnescape(k)] = v
	}
	if decode {
		if b, err := base64.StdEncoding.DecodeString(m.Body); err == nil {
			r.Body = string(b)
		}
	}
	return r
}

// QueueURLFromARN turns an SQS queue ARN, arn:PARTITION:sqs:REGION:ACCOUNT:NAME,
// into the queue's URL, https://sqs.REGION.DOMAIN/ACCOUNT/NAME. It reports
// false for anything else.
func QueueURLFromARN(arn string) (string, bool) {
	parts := strings.Split(arn, ":")
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "sqs" || parts[3] == "" || parts[4] == "" || parts[5] == "" {
		return "", false
	}
	domain := "amazonaws.com"
	if parts[1] == "aws-cn" {
		domain = "amazonaws.com.cn"
	}
	return "https://sqs." + parts[3] + "." + domain + "/" + parts[4] + "/" + parts[5], true
}

// hexUnescape reverses gocloud's escaping of metadata keys: each rune it
// could not send is written as "__0x<hex>__".
func hexUnescape(s string) string {
	if !strings.Contains(s, "__0x") {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		i := strings.Index(s, "__0x")
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		rest := s[i+4:]
		end := strings.Index(rest, "__")
		if end >= 0 && !strings.Contains(rest[:end], "_") {
			if n, err := strconv.ParseInt(rest[:end], 16, 32); err == nil {
				b.WriteRune(rune(n))
				s = rest[end+2:]
				continue
			}
		}
		b.WriteString(s[i : i+1])
		s = s[i+1:]
	}
	return b.String()
}
