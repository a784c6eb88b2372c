package memstore

import (
	"encoding/gob"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

func init() {
	// The file holds generic documents: gob must know the concrete types
	// stored behind interfaces.
	gob.Register(time.Time{})
	gob.Register([]any{})
	gob.Register(map[string]any{})
}

// The file is a gob of map[key]document, each document a map of encoded
// values holding its revision under the revision field: memdocstore's
// format, so a file saved by mem:// loads here.
type fileDocs = map[any]map[string]any

// load reads the file, if there is one.
func (c *collection) load() error {
	if c.opts.Filename == "" {
		return nil
	}
	f, err := os.Open(c.opts.Filename)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load %s: %w", c.opts.Filename, err)
	}
	defer f.Close()
	var docs fileDocs
	if err := gob.NewDecoder(f).Decode(&docs); err != nil {
		return fmt.Errorf("load %s: %w", c.opts.Filename, err)
	}
	var maxRev int64
	for k, m := range docs {
		s := &stored{m: m}
		if r, ok := m[c.opts.RevisionField].(int64); ok {
			s.rev = r
			maxRev = max(maxRev, r)
		}
		c.setExpiry(s)
		c.store(c.shardOf(k), k, nil, s)
	}
	c.revision.Store(maxRev)
	return nil
}

// save writes every document to the file, through a temporary file so
// that a crash never leaves half a file.
func (c *collection) save() error {
	if c.opts.Filename == "" {
		return nil
	}
	docs := fileDocs{}
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		for k, s := range sh.docs {
			if s.m != nil {
				docs[k] = s.m
			} else {
				docs[k] = s.ti.toMap(s.packed, c.opts.RevisionField, s.rev, s.rev != 0)
			}
		}
		sh.mu.RUnlock()
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.opts.Filename), filepath.Base(c.opts.Filename)+".tmp*")
	if err != nil {
		return fmt.Errorf("save %s: %w", c.opts.Filename, err)
	}
	if err := gob.NewEncoder(tmp).Encode(docs); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("save %s: %w", c.opts.Filename, err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("save %s: %w", c.opts.Filename, err)
	}
	if err := os.Rename(tmp.Name(), c.opts.Filename); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("save %s: %w", c.opts.Filename, err)
	}
	return nil
}
