// Package memstore is Drover's in-process docstore driver, behind gocloud's
// docstore/driver interfaces: the status store of the embedded default.
// It registers the URL scheme "memstore" in init, as memq does for queues.
//
// It differs from gocloud's memdocstore (mem://) where a busy store
// notices:
//
//   - Documents live in shards, each with its own lock, and actions run
//     inline on the caller's goroutine (memdocstore takes one collection
//     lock and starts a goroutine per action).
//   - A document of a "flat" struct type (fields of strings, booleans,
//     numbers, time.Time, []byte or []string, plus an interface revision
//     field) is packed into one pointer-free []byte (so the garbage
//     collector marks it without scanning it) and read back by writing
//     the fields in place, not through a map[string]any and the
//     reflective decoder. Every other document (maps, nested structs,
//     other types, times in a location other than UTC and Local) is kept
//     as memdocstore keeps it, a map of encoded values.
//   - Queries ordered by the key field, when keys are strings, walk an
//     ordered index (a B-tree) from the bound given by the key filters and
//     stop at the limit, instead of filtering and sorting every document.
//   - Documents can expire: with an expiry field (epoch seconds, as
//     DynamoDB's TTL), a sweep every second drops those whose time has
//     come; with a cap, the documents carrying an expiry (optionally only
//     those with a given field value, cap_where) are kept to at most that
//     many, dropping those that expire soonest first. Documents without
//     an expiry are never dropped.
//   - The file (?filename=) is written to a temporary file and renamed at
//     Close, and loaded at open.
//
// Revisions are int64s from one counter, as in memdocstore. Write actions
// marked atomic (docstore.ActionList.AtomicWrites) are applied all or none
// under the locks of every shard they touch.
//
// # Drover extensions
//
// A collection's As supports *driver.DirectCollection of package
// pkg/task/driver (all memstore imports of Drover): batch reads and
// writes on the caller's goroutine, doing for each document what an
// action list would. Its errors carry their gcerrors code (driver.Code).
//
// # URLs
//
//	memstore://collection/keyfield?filename=F&expiry_field=expires_at&cap=N&cap_where=kind:task&revision_field=R
//
// The host names the collection (one per process and name: opening the
// same name again returns the same collection until it is closed); the
// path is the key field. Unknown query parameters are rejected.
package memstore
