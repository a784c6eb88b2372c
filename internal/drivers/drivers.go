// Package drivers links the gocloud drivers Drover's programs support;
// the mains import it for its side effects. Users who build their own
// runner binary import it too, or pick drivers one by one.
package drivers

import (
	"encoding/gob"
	"time"

	// Queues: Drover's in-process queue, and SQS (topics may also be SNS)
	// with Drover's extension of it (leases, delays, batched sends and
	// acks).
	_ "github.com/droverhq/drover/pkg/awsq"
	_ "github.com/droverhq/drover/pkg/memq"
	_ "gocloud.dev/pubsub/awssnssqs"

	// Buckets: local files, memory, S3.
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/memblob"
	_ "gocloud.dev/blob/s3blob"

	// Status stores: Drover's in-process store (the embedded default),
	// gocloud's memory store (both persisted to a file), DynamoDB.
	_ "github.com/droverhq/drover/pkg/memstore"
	_ "gocloud.dev/docstore/awsdynamodb/v2"
	_ "gocloud.dev/docstore/memdocstore"
)

func init() {
	// memdocstore persists its documents with encoding/gob (the embedded
	// default's ?filename=), which must know every concrete type stored
	// behind an interface.
	gob.Register(time.Time{})
	gob.Register([]any{})
	gob.Register(map[string]any{})
}
