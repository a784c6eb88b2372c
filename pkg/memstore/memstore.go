package memstore

import (
	"context"
	"hash/maphash"
	"math"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/btree"
	"gocloud.dev/docstore"
	"gocloud.dev/docstore/driver"
	"gocloud.dev/gcerrors"

	"github.com/droverhq/drover/pkg/durable"
	taskdriver "github.com/droverhq/drover/pkg/task/driver"
)

// Options configure a collection.
type Options struct {
	// RevisionField names the field holding the document revision
	// (docstore.DefaultRevisionField when empty).
	RevisionField string
	// Filename, if set, is where the collection is loaded from at open
	// (if it exists) and saved to at Close.
	Filename string
	// ExpiryField, if set, names a field holding when a document may be
	// dropped, in seconds since the Unix epoch (as DynamoDB's TTL): a
	// sweep every second drops the documents whose time has come. Zero
	// or a missing field never expires.
	ExpiryField string
	// Cap, if positive, bounds how many documents carrying an expiry
	// (and, with CapField, whose CapField equals CapValue) are kept:
	// beyond it, the sweep drops those of them that expire soonest.
	// Documents without an expiry never count and are never dropped.
	Cap      int
	CapField string
	CapValue string
	// Engine, if set, makes the collection durable: every change is
	// journaled in it and the collection is loaded from it at open (see
	// durable.go). Name then names the collection in the engine. The
	// collection takes over the caller's reference to Engine and gives
	// it back at Close. Filename must then be empty.
	Engine *durable.Engine
	Name   string

	onClose func()
}

// shards is the number of independently locked parts of a collection.
const shards = 64

// A stored document is immutable once stored: a write stores a new one.
// Exactly one of packed (typed, with ti) and m (generic) is set.
type stored struct {
	// key is the document's key as first stored: writes index the
	// document under this one value, not under the copy each decoded
	// action boxes, so that the shard map, the expiry index and the
	// document share one boxed key instead of each write retaining another.
	key    any
	ti     *typeInfo
	packed []byte
	m      map[string]any
	rev    int64 // 0: the document has no revision
	expiry int64 // epoch seconds, 0: never
	capped bool  // counts against Options.Cap
}

// indexed returns the expiry s is indexed under and whether it counts
// against the cap (0, false for none).
func (s *stored) indexed() (int64, bool) {
	if s == nil {
		return 0, false
	}
	return s.expiry, s.capped
}

type shard struct {
	mu   sync.RWMutex
	docs map[any]*stored
}

type collection struct {
	keyField string
	keyFunc  func(docstore.Document) any
	opts     Options
	seed     maphash.Seed
	shards   [shards]shard
	revision atomic.Int64

	// index orders the string keys, for queries ordered by the key
	// field. Lock order: a shard's lock, then index's.
	indexMu sync.RWMutex
	index   *btree.BTreeG[string]
	other   atomic.Int64 // documents whose key is not a string

	pfx    []byte // of its keys in Options.Engine
	loaded int    // documents loaded at open

	exp       *expiries // nil without ExpiryField
	stop      chan struct{}
	sweepDone chan struct{}
	closeOnce sync.Once
	closed    atomic.Bool // for the direct path; the portable type checks its own
}

// OpenCollection returns a collection keyed by keyField.
func OpenCollection(keyField string, opts *Options) (*docstore.Collection, error) {
	c, err := newCollection(keyField, nil, opts)
	if err != nil {
		return nil, err
	}
	return docstore.NewCollection(c), nil
}

// OpenCollectionWithKeyFunc returns a collection whose keys keyFunc
// computes from a document (a *struct or a map[string]any); it returns
// nil when the document lacks what the key is made of.
func OpenCollectionWithKeyFunc(keyFunc func(docstore.Document) any, opts *Options) (*docstore.Collection, error) {
	c, err := newCollection("", keyFunc, opts)
	if err != nil {
		return nil, err
	}
	return docstore.NewCollection(c), nil
}

func newCollection(keyField string, keyFunc func(docstore.Document) any, opts *Options) (*collection, error) {
	if keyField == "" && keyFunc == nil {
		return nil, taskdriver.Errorf(gcerrors.InvalidArgument, "must provide either keyField or keyFunc")
	}
	c := &collection{keyField: keyField, keyFunc: keyFunc, seed: maphash.MakeSeed(), index: btree.NewOrderedG[string](32)}
	if opts != nil {
		c.opts = *opts
	}
	if c.opts.RevisionField == "" {
		c.opts.RevisionField = docstore.DefaultRevisionField
	}
	for i := range c.shards {
		c.shards[i].docs = map[any]*stored{}
	}
	if c.opts.ExpiryField != "" {
		c.exp = newExpiries()
	}
	if e := c.opts.Engine; e != nil {
		if c.opts.Filename != "" || c.opts.Name == "" {
			e.Close()
			return nil, taskdriver.Errorf(gcerrors.InvalidArgument, "a durable collection needs a Name and no Filename")
		}
		c.pfx = append([]byte("d/"+c.opts.Name), 0)
		if err := c.loadEngine(); err != nil {
			e.Close()
			return nil, err
		}
	} else if err := c.load(); err != nil {
		return nil, err
	}
	if c.exp != nil {
		c.stop = make(chan struct{})
		c.sweepDone = make(chan struct{})
		go c.sweepLoop()
	}
	return c, nil
}

func (c *collection) shardOf(key any) *shard {
	if s, ok := key.(string); ok {
		return &c.shards[maphash.String(c.seed, s)%shards]
	}
	return &c.shards[maphash.Comparable(c.seed, key)%shards]
}

// Key implements driver.Collection.
func (c *collection) Key(doc driver.Document) (any, error) {
	if c.keyField != "" {
		key, _ := doc.GetField(c.keyField) // a missing key is nil
		if key != nil && !reflect.TypeOf(key).Comparable() {
			return nil, taskdriver.Errorf(gcerrors.InvalidArgument, "key of type %T is not comparable", key)
		}
		return key, nil
	}
	key := c.keyFunc(doc.Origin)
	if key == nil || driver.IsEmptyValue(reflect.ValueOf(key)) {
		return nil, taskdriver.Errorf(gcerrors.InvalidArgument, "missing document key")
	}
	return key, nil
}

// RevisionField implements driver.Collection.
func (c *collection) RevisionField() string { return c.opts.RevisionField }

// RunActions implements driver.Collection. Actions run inline, in the
// groups driver.GroupActions forms.
func (c *collection) RunActions(ctx context.Context, actions []*driver.Action, opts *driver.RunActionsOptions) driver.ActionListError {
	errs := make([]error, len(actions))
	if opts.BeforeDo != nil {
		if err := opts.BeforeDo(func(any) bool { return false }); err != nil {
			for i := range errs {
				errs[i] = err
			}
			return driver.NewActionListError(errs)
		}
	}
	run := func(as []*driver.Action) {
		for _, a := range as {
			errs[a.Index] = c.runAction(ctx, a)
		}
	}
	if len(actions) == 1 && !actions[0].InAtomicWrite {
		run(actions)
		if errs[0] == nil && actions[0].Kind == driver.Create {
			errs[0] = c.syncCreate()
		}
		return driver.NewActionListError(errs)
	}
	beforeGets, gets, writes, writesTx, afterGets := driver.GroupActions(actions)
	run(beforeGets)
	run(gets)
	run(writes)
	if len(writesTx) > 0 {
		c.runAtomicWrites(ctx, writesTx, errs)
	}
	if c.opts.Engine != nil && len(writes)+len(writesTx) > 0 {
		if err := c.syncCreate(); err != nil {
			for i := range errs {
				if errs[i] == nil {
					errs[i] = err
				}
			}
		}
	}
	run(afterGets)
	return driver.NewActionListError(errs)
}

// A Create on a durable collection is journaled without waiting: the
// caller syncs once for every Create it ran (syncCreate) before it
// answers for them.
func (c *collection) runAction(ctx context.Context, a *driver.Action) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var sh *shard
	if a.Key != nil {
		sh = c.shardOf(a.Key)
	} else {
		// Create without a key: the key is made below, under the shard
		// of... a key we do not have yet. Make it first.
		if a.Kind != driver.Create {
			return taskdriver.Errorf(gcerrors.InvalidArgument, "missing document key")
		}
		a.Key = driver.UniqueString()
		if err := a.Doc.SetField(c.keyField, a.Key); err != nil {
			return taskdriver.Errorf(gcerrors.InvalidArgument, "cannot set key field %q", c.keyField)
		}
		sh = c.shardOf(a.Key)
	}
	if a.Kind == driver.Get {
		sh.mu.RLock()
		cur := sh.docs[a.Key]
		sh.mu.RUnlock()
		if cur == nil {
			return taskdriver.Errorf(gcerrors.NotFound, "document with key %v does not exist", a.Key)
		}
		return c.decode(cur, a.Doc, a.FieldPaths)
	}
	// Encode before taking the lock.
	var next *stored
	if a.Kind == driver.Create || a.Kind == driver.Replace || a.Kind == driver.Put {
		var err error
		if next, err = c.encode(a.Doc); err != nil {
			return err
		}
	}
	sh.mu.Lock()
	cur := sh.docs[a.Key]
	if cur != nil {
		a.Key = cur.key
	}
	err := c.check(a, cur)
	if err == nil {
		err = c.execute(sh, a, cur, next, nil)
	}
	sh.mu.Unlock()
	if next != nil && next.capped {
		c.trimCap()
	}
	return err
}

// check returns the error an action meets on the current document, if
// any. Call with the shard locked.
func (c *collection) check(a *driver.Action, cur *stored) error {
	switch a.Kind {
	case driver.Create:
		if cur != nil {
			return taskdriver.Errorf(gcerrors.AlreadyExists, "Create: document with key %v exists", a.Key)
		}
		return nil
	case driver.Replace, driver.Update, driver.Get:
		if cur == nil {
			return taskdriver.Errorf(gcerrors.NotFound, "document with key %v does not exist", a.Key)
		}
	}
	if a.Kind == driver.Get || cur == nil || cur.rev == 0 {
		return nil
	}
	r, err := a.Doc.GetField(c.opts.RevisionField)
	if err != nil || r == nil {
		return nil // no incoming revision: nothing to check
	}
	want, ok := r.(int64)
	if !ok {
		return taskdriver.Errorf(gcerrors.InvalidArgument, "revision field %s is not an int64", c.opts.RevisionField)
	}
	if want != cur.rev {
		return taskdriver.Errorf(gcerrors.FailedPrecondition, "mismatched revisions: want %d, current %d", want, cur.rev)
	}
	return nil
}

// execute applies a checked write. next is the encoded document of a
// Create, Replace or Put. The journal's change goes in jb if not nil (see
// persist). Call with the shard locked.
func (c *collection) execute(sh *shard, a *driver.Action, cur, next *stored, jb *durable.Batch) error {
	switch a.Kind {
	case driver.Create, driver.Replace, driver.Put:
		if next.hasRevision(a.Doc, c.opts.RevisionField) {
			next.rev = c.revision.Add(1)
			if err := c.setRevision(a.Doc, next); err != nil {
				return err
			}
		}
		if err := c.persist(jb, a.Key, next); err != nil {
			return err
		}
		c.store(sh, a.Key, cur, next)
	case driver.Delete:
		if cur != nil {
			if err := c.persistDelete(jb, a.Key); err != nil {
				return err
			}
			c.remove(sh, a.Key, cur)
		}
	case driver.Update:
		m := cur.m
		if m == nil {
			m = cur.ti.toMap(cur.packed, c.opts.RevisionField, cur.rev, cur.rev != 0)
		} else {
			m = deepCopyMap(m)
		}
		if err := update(m, a.Mods); err != nil {
			return err
		}
		next := &stored{m: m}
		c.setExpiry(next)
		if a.Doc.HasField(c.opts.RevisionField) {
			next.rev = c.revision.Add(1)
			m[c.opts.RevisionField] = next.rev
			if err := a.Doc.SetField(c.opts.RevisionField, next.rev); err != nil {
				return err
			}
		} else if r, ok := m[c.opts.RevisionField].(int64); ok {
			next.rev = r
		}
		if err := c.persist(jb, a.Key, next); err != nil {
			return err
		}
		c.store(sh, a.Key, cur, next)
	default:
		return taskdriver.Errorf(gcerrors.Internal, "unknown kind %v", a.Kind)
	}
	return nil
}

func (s *stored) hasRevision(doc driver.Document, revField string) bool {
	if s.ti != nil {
		return s.ti.rev != nil
	}
	return doc.HasField(revField)
}

func (c *collection) setRevision(doc driver.Document, s *stored) error {
	if s.ti != nil {
		reflect.ValueOf(doc.Origin).Elem().FieldByIndex(s.ti.rev).Set(reflect.ValueOf(s.rev))
		return nil
	}
	s.m[c.opts.RevisionField] = s.rev
	return doc.SetField(c.opts.RevisionField, s.rev)
}

// encode makes the stored form of a document.
func (c *collection) encode(doc driver.Document) (*stored, error) {
	var s *stored
	if _, isMap := doc.Origin.(map[string]any); !isMap {
		if ti := typeOf(doc, c.opts.RevisionField); ti.flat {
			if b, ok := ti.pack(reflect.ValueOf(doc.Origin).UnsafePointer()); ok {
				s = &stored{ti: ti, packed: b}
			}
		}
	}
	if s == nil {
		m, err := encodeDoc(doc)
		if err != nil {
			return nil, err
		}
		s = &stored{m: m}
	}
	c.setExpiry(s)
	return s, nil
}

// setExpiry reads the expiry of s, and whether it counts against the cap.
func (c *collection) setExpiry(s *stored) {
	if c.exp == nil {
		return
	}
	s.expiry = s.int64Field(c.opts.ExpiryField)
	if c.opts.Cap > 0 && s.expiry != 0 {
		s.capped = true
		if c.opts.CapField != "" {
			v, _ := s.field([]string{c.opts.CapField})
			s.capped = v == c.opts.CapValue
		}
	}
}

// int64Field returns an integer field of s, 0 if missing or not one.
func (s *stored) int64Field(name string) int64 {
	v, _ := s.field([]string{name})
	n, _ := v.(int64)
	return n
}

// field returns the value at fp in the generic encoding.
func (s *stored) field(fp []string) (any, bool) {
	if s.m != nil {
		v, err := getAtFieldPath(s.m, fp, false)
		return v, err == nil
	}
	if len(fp) != 1 {
		return nil, false
	}
	i, ok := s.ti.byName[fp[0]]
	if !ok {
		if s.ti.rev != nil && s.rev != 0 && fp[0] == "" {
			return s.rev, true
		}
		return nil, false
	}
	return s.ti.fields[i].value(s.packed), true
}

// decode copies s into doc: field by field when doc is of s's flat type,
// through the generic decoder otherwise.
func (c *collection) decode(s *stored, doc driver.Document, fps [][]string) error {
	if s.ti != nil && reflect.TypeOf(doc.Origin).Elem() == s.ti.typ {
		if _, isMap := doc.Origin.(map[string]any); !isMap {
			if ok := c.decodeTyped(s, reflect.ValueOf(doc.Origin).Elem(), fps); ok {
				return nil
			}
		}
	}
	m := s.m
	if m == nil {
		m = s.ti.toMap(s.packed, c.opts.RevisionField, s.rev, s.rev != 0)
	}
	return decodeDoc(m, doc, fps)
}

// decodeTyped writes the fields of s named by fps (all when empty) into
// dst. It reports false, having changed nothing, for field paths it does
// not serve.
func (c *collection) decodeTyped(s *stored, dst reflect.Value, fps [][]string) bool {
	ti := s.ti
	for _, fp := range fps {
		if len(fp) != 1 {
			return false
		}
		if _, ok := ti.byName[fp[0]]; !ok && fp[0] != c.opts.RevisionField {
			return false
		}
	}
	p := dst.Addr().UnsafePointer()
	if len(fps) == 0 {
		for i := range ti.fields {
			ti.fields[i].unpack(s.packed, p)
		}
	}
	rev := len(fps) == 0
	for _, fp := range fps {
		if i, ok := ti.byName[fp[0]]; ok {
			ti.fields[i].unpack(s.packed, p)
		} else {
			rev = true
		}
	}
	if rev && ti.rev != nil && s.rev != 0 {
		dst.FieldByIndex(ti.rev).Set(reflect.ValueOf(s.rev))
	}
	return true
}

// store puts next in place of cur (nil when new). Call with the shard
// locked.
func (c *collection) store(sh *shard, key any, cur, next *stored) {
	next.key = key
	sh.docs[key] = next
	if cur == nil {
		c.indexAdd(key)
	}
	if c.exp != nil {
		old, oldCapped := cur.indexed()
		c.exp.change(key, old, oldCapped, next.expiry, next.capped)
	}
}

// remove drops the document cur at key. Call with the shard locked.
func (c *collection) remove(sh *shard, key any, cur *stored) {
	delete(sh.docs, key)
	c.indexDelete(key)
	if c.exp != nil {
		c.exp.change(key, cur.expiry, cur.capped, 0, false)
	}
}

func (c *collection) indexAdd(key any) {
	s, ok := key.(string)
	if !ok {
		c.other.Add(1)
		return
	}
	c.indexMu.Lock()
	c.index.ReplaceOrInsert(s)
	c.indexMu.Unlock()
}

func (c *collection) indexDelete(key any) {
	s, ok := key.(string)
	if !ok {
		c.other.Add(-1)
		return
	}
	c.indexMu.Lock()
	c.index.Delete(s)
	c.indexMu.Unlock()
}

// runAtomicWrites applies actions all or none, under the locks of every
// shard they touch (taken in shard order).
func (c *collection) runAtomicWrites(ctx context.Context, actions []*driver.Action, errs []error) {
	fail := func(err error) {
		for _, a := range actions {
			errs[a.Index] = err
		}
	}
	if err := ctx.Err(); err != nil {
		fail(err)
		return
	}
	nexts := make([]*stored, len(actions))
	var idx []int
	for i, a := range actions {
		if a.Key == nil {
			if a.Kind != driver.Create {
				fail(taskdriver.Errorf(gcerrors.InvalidArgument, "missing document key"))
				return
			}
			a.Key = driver.UniqueString()
			if err := a.Doc.SetField(c.keyField, a.Key); err != nil {
				fail(taskdriver.Errorf(gcerrors.InvalidArgument, "cannot set key field %q", c.keyField))
				return
			}
		}
		if a.Kind == driver.Create || a.Kind == driver.Replace || a.Kind == driver.Put {
			n, err := c.encode(a.Doc)
			if err != nil {
				fail(err)
				return
			}
			nexts[i] = n
		}
		j := int(c.shardIndex(a.Key))
		if !slices.Contains(idx, j) {
			idx = append(idx, j)
		}
	}
	slices.Sort(idx)
	for _, j := range idx {
		c.shards[j].mu.Lock()
		defer c.shards[j].mu.Unlock()
	}
	curs := make([]*stored, len(actions))
	seen := map[any]*stored{}
	for i, a := range actions {
		cur, ok := seen[a.Key]
		if !ok {
			cur = c.shardOf(a.Key).docs[a.Key]
		}
		if err := c.check(a, cur); err != nil {
			fail(err)
			return
		}
		curs[i] = cur
		seen[a.Key] = cur
	}
	for i, a := range actions {
		sh := c.shardOf(a.Key)
		cur := sh.docs[a.Key]
		if cur != nil {
			a.Key = cur.key
		}
		if err := c.execute(sh, a, cur, nexts[i], nil); err != nil {
			fail(err)
			return
		}
	}
}

func (c *collection) shardIndex(key any) uint64 {
	if s, ok := key.(string); ok {
		return maphash.String(c.seed, s) % shards
	}
	return maphash.Comparable(c.seed, key) % shards
}

// RevisionToBytes implements driver.Collection.
func (c *collection) RevisionToBytes(rev any) ([]byte, error) {
	r, ok := rev.(int64)
	if !ok {
		return nil, taskdriver.Errorf(gcerrors.InvalidArgument, "revision %v of type %[1]T is not an int64", rev)
	}
	return strconv.AppendInt(nil, r, 10), nil
}

// BytesToRevision implements driver.Collection.
func (c *collection) BytesToRevision(b []byte) (any, error) {
	return strconv.ParseInt(string(b), 10, 64)
}

// As implements driver.Collection. It supports *taskdriver.DirectCollection.
func (c *collection) As(i any) bool {
	switch p := i.(type) {
	case *taskdriver.DirectCollection:
		*p = c
		return true
	case *taskdriver.Syncer:
		if c.opts.Engine == nil {
			return false // a file-backed collection saves at Close only
		}
		*p = c
		return true
	case **collection:
		*p = c
		return true
	}
	return false
}

// ErrorAs implements driver.Collection.
func (c *collection) ErrorAs(error, any) bool { return false }

// ErrorCode implements driver.Collection.
func (c *collection) ErrorCode(err error) gcerrors.ErrorCode { return taskdriver.Code(err) }

// Close implements driver.Collection: it stops the sweep and saves the
// file, if any.
func (c *collection) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		if c.stop != nil {
			close(c.stop)
			<-c.sweepDone
		}
		if c.opts.onClose != nil {
			c.opts.onClose()
		}
		if e := c.opts.Engine; e != nil {
			if e.Err() == nil {
				err = e.Sync()
			}
			if cerr := e.Close(); err == nil {
				err = cerr
			}
			return
		}
		err = c.save()
	})
	return err
}

// sweepLoop drops expired documents once a second until Close.
func (c *collection) sweepLoop() {
	defer close(c.sweepDone)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case now := <-t.C:
			c.sweep(now)
		}
	}
}

// sweep drops the documents that expire at or before now, and, over the
// cap, those of the capped ones that expire soonest.
func (c *collection) sweep(now time.Time) {
	c.drop(c.exp.due(now.Unix(), c.opts.Cap))
}

// trimCap drops the capped documents over the cap that expire soonest.
// The write that takes the count over the cap calls it, after releasing
// its shard, so the cap costs each write about one removal instead of a
// burst of every removal a second's writes made due, which stalled
// writers behind the sweep once a second.
func (c *collection) trimCap() {
	if c.exp.over(c.opts.Cap) {
		c.drop(c.exp.due(math.MinInt64, c.opts.Cap))
	}
}

// drop removes the documents of due that still carry the expiry they
// were indexed under.
func (c *collection) drop(due []dueKey) {
	for _, k := range due {
		sh := c.shardOf(k.key)
		sh.mu.Lock()
		if cur := sh.docs[k.key]; cur != nil && cur.expiry == k.at {
			if c.persistDelete(nil, k.key) == nil { // else the engine has failed: keep it
				c.remove(sh, k.key, cur)
			}
		}
		sh.mu.Unlock()
	}
}

// update applies mods to doc (adapted from memdocstore): all or nothing.
func update(doc map[string]any, mods []driver.Mod) error {
	slices.SortFunc(mods, func(a, b driver.Mod) int {
		switch {
		case a.FieldPath[0] < b.FieldPath[0]:
			return -1
		case a.FieldPath[0] > b.FieldPath[0]:
			return 1
		}
		return 0
	})
	type guaranteedMod struct {
		parentMap    map[string]any
		key          string
		encodedValue any
	}
	gmods := make([]guaranteedMod, len(mods))
	var err error
	for i, mod := range mods {
		gmod := &gmods[i]
		if gmod.parentMap, err = getParentMap(doc, mod.FieldPath, false); err != nil {
			return err
		}
		gmod.key = mod.FieldPath[len(mod.FieldPath)-1]
		if inc, ok := mod.Value.(driver.IncOp); ok {
			amt, err := encodeValue(inc.Amount)
			if err != nil {
				return err
			}
			if gmod.encodedValue, err = add(gmod.parentMap[gmod.key], amt); err != nil {
				return err
			}
		} else if mod.Value != nil {
			if gmod.encodedValue, err = encodeValue(mod.Value); err != nil {
				return err
			}
		}
	}
	for _, m := range gmods {
		if m.encodedValue == nil {
			delete(m.parentMap, m.key)
		} else {
			m.parentMap[m.key] = m.encodedValue
		}
	}
	return nil
}

// deepCopyMap copies the maps and lists of a generic document, so that an
// update never changes a stored one.
func deepCopyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = deepCopyValue(v)
	}
	return out
}

func deepCopyValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return deepCopyMap(v)
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = deepCopyValue(x)
		}
		return out
	}
	return v
}
