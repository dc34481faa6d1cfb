package storage

import (
	"context"
	"errors"
	"sync"
)

// Cache keeps one open Store per location, for the stores named in
// supplier files (destinations, egress): opening an S3 bucket sets up a
// client, which should not happen per file or per session. It is safe for
// concurrent use.
type Cache struct {
	// Opened, when set, runs once on each store the cache opens, before
	// anyone uses it; its error closes the store and fails the Open.
	Opened func(*Store) error

	mu     sync.Mutex
	stores map[string]*Store
}

// Open returns the store at location, opening it on first use. The store
// outlives ctx: it stays open until Close.
func (c *Cache) Open(ctx context.Context, location string) (*Store, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.stores[location]; ok {
		return st, nil
	}
	st, err := Open(context.WithoutCancel(ctx), location)
	if err != nil {
		return nil, err
	}
	if c.Opened != nil {
		if err := c.Opened(st); err != nil {
			st.Close()
			return nil, err
		}
	}
	if c.stores == nil {
		c.stores = make(map[string]*Store)
	}
	c.stores[location] = st
	return st, nil
}

// Close closes every store the cache opened; it may be used again after.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, st := range c.stores {
		errs = append(errs, st.Close())
	}
	c.stores = nil
	return errors.Join(errs...)
}
