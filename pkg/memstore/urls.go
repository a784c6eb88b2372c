package memstore

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"gocloud.dev/docstore"

	"github.com/droverhq/drover/pkg/durable"
)

// Scheme is the URL scheme memstore registers on docstore's default mux.
const Scheme = "memstore"

func init() {
	docstore.DefaultURLMux().RegisterCollection(Scheme, &URLOpener{})
}

// URLOpener opens URLs like
// "memstore://status/id?filename=status.gob&expiry_field=expires_at&cap=100000&cap_where=kind:task".
// The host names the collection, the path is its key field. Parameters:
// revision_field, filename, expiry_field, cap and cap_where
// (field:value) set the Options of the same names; dir makes the
// collection durable in the engine of that data directory (Options.Engine).
// Opening a name that is open returns the same collection.
type URLOpener struct {
	mu          sync.Mutex
	collections map[string]urlColl
}

type urlColl struct {
	keyField string
	coll     *docstore.Collection
}

// OpenCollectionURL implements docstore.CollectionURLOpener.
func (o *URLOpener) OpenCollectionURL(_ context.Context, u *url.URL) (*docstore.Collection, error) {
	name := u.Host
	if name == "" {
		return nil, fmt.Errorf("open collection %s: empty collection name", u.Redacted())
	}
	keyField := strings.TrimPrefix(u.Path, "/")
	if keyField == "" || strings.Contains(keyField, "/") {
		return nil, fmt.Errorf("open collection %s: invalid key field %q (want one name, no slashes)", u.Redacted(), keyField)
	}
	q := u.Query()
	opts := &Options{
		RevisionField: q.Get("revision_field"),
		Filename:      q.Get("filename"),
		ExpiryField:   q.Get("expiry_field"),
		Name:          name,
	}
	dir := q.Get("dir")
	if dir != "" && opts.Filename != "" {
		return nil, fmt.Errorf("open collection %s: dir and filename exclude each other", u.Redacted())
	}
	if s := q.Get("cap"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("open collection %s: cap=%q: want a count", u.Redacted(), s)
		}
		opts.Cap = n
	}
	if s := q.Get("cap_where"); s != "" {
		f, v, ok := strings.Cut(s, ":")
		if !ok || f == "" {
			return nil, fmt.Errorf("open collection %s: cap_where=%q: want field:value", u.Redacted(), s)
		}
		opts.CapField, opts.CapValue = f, v
	}
	if (opts.Cap > 0 || opts.CapField != "") && opts.ExpiryField == "" {
		return nil, fmt.Errorf("open collection %s: cap and cap_where need expiry_field", u.Redacted())
	}
	for p := range q {
		switch p {
		case "revision_field", "filename", "expiry_field", "cap", "cap_where", "dir":
		default:
			return nil, fmt.Errorf("open collection %s: invalid query parameter %q", u.Redacted(), p)
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if c, ok := o.collections[name]; ok {
		if c.keyField != keyField {
			return nil, fmt.Errorf("open collection %s: key field %q differs from the open collection's %q", u.Redacted(), keyField, c.keyField)
		}
		return c.coll, nil
	}
	if dir != "" {
		eng, err := durable.Open(dir, nil)
		if err != nil {
			return nil, fmt.Errorf("open collection %s: %w", u.Redacted(), err)
		}
		opts.Engine = eng
	}
	opts.onClose = func() {
		o.mu.Lock()
		delete(o.collections, name)
		o.mu.Unlock()
	}
	coll, err := OpenCollection(keyField, opts)
	if err != nil {
		return nil, err
	}
	if o.collections == nil {
		o.collections = map[string]urlColl{}
	}
	o.collections[name] = urlColl{keyField, coll}
	return coll, nil
}
