package ledger

import (
	"context"
	"database/sql/driver"
	"fmt"
)

// SQLite parses a query each time it is sent as text, and River sends all
// of its queries as text: parsing was a sixth of airlock's CPU time when
// many small files went through the pipeline. So each SQLite connection
// keeps the statements it has run, by their text, and runs them again
// without parsing. SQLite re-prepares a kept statement by itself when the
// schema changes under it.

// stmtCacheSize bounds the statements one connection keeps. River's and
// this package's query texts are a few dozen; a text built per call (a
// list of a varying number of values) falls out of the cache again.
const stmtCacheSize = 128

// cachingConnector opens connections that keep their statements.
type cachingConnector struct{ driver.Connector }

var _ driver.Connector = cachingConnector{}

func (c cachingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	inner, ok := conn.(sqliteConn)
	if !ok {
		_ = conn.Close() // unusable here either way
		return nil, fmt.Errorf("sqlite connection %T lacks the context interfaces", conn)
	}
	return &cachingConn{sqliteConn: inner, stmts: make(map[string]*cachedStmt)}, nil
}

// sqliteConn is what the SQLite driver's connections implement and
// database/sql looks for.
type sqliteConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// cachingConn is used by one goroutine at a time, as database/sql uses
// every connection.
type cachingConn struct {
	sqliteConn
	stmts map[string]*cachedStmt
	clock uint64 // counts uses, for evicting the least recently used
}

var _ sqliteConn = (*cachingConn)(nil)

// cachedStmt is a kept statement. While rows read from it are open it is
// busy, and the same text is run unkept beside it.
type cachedStmt struct {
	stmt    sqliteStmt
	lastUse uint64
	busy    bool
}

// close finalizes the statement. That repeats the error of its last run,
// which the caller of that run was given.
func (st *cachedStmt) close() { _ = st.stmt.Close() }

type sqliteStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

// statement returns the kept statement for query, preparing it on first
// use; nil when it is busy.
func (c *cachingConn) statement(ctx context.Context, query string) (*cachedStmt, error) {
	c.clock++
	if st, ok := c.stmts[query]; ok {
		if st.busy {
			return nil, nil
		}
		st.lastUse = c.clock
		return st, nil
	}
	ds, err := c.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	st := &cachedStmt{lastUse: c.clock}
	var ok bool
	if st.stmt, ok = ds.(sqliteStmt); !ok {
		_ = ds.Close() // unusable here either way
		return nil, fmt.Errorf("sqlite statement %T lacks the context interfaces", ds)
	}
	if len(c.stmts) >= stmtCacheSize {
		c.evict()
	}
	c.stmts[query] = st
	return st, nil
}

// evict closes the least recently used statement that is not busy.
func (c *cachingConn) evict() {
	var oldest string
	var found *cachedStmt
	for q, st := range c.stmts {
		if !st.busy && (found == nil || st.lastUse < found.lastUse) {
			oldest, found = q, st
		}
	}
	if found != nil {
		delete(c.stmts, oldest)
		found.close()
	}
}

// runToEnd is the context a SQLite statement runs under: ctx, except that
// its end no longer interrupts the statement, only keeps it from starting.
// A statement here takes microseconds, and the driver watches each
// cancellable one on a goroutine of its own, started and stopped around it:
// ten goroutines for a transaction of eight statements, which cost a state
// change (BenchmarkSmallUpload) 7–18% of its time. Waits for SQLite's lock
// are bounded by busy_timeout anyway.
func runToEnd(ctx context.Context) (context.Context, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return context.WithoutCancel(ctx), nil
}

func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	ctx, err := runToEnd(ctx)
	if err != nil {
		return nil, err
	}
	return c.sqliteConn.BeginTx(ctx, opts)
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	ctx, err := runToEnd(ctx)
	if err != nil {
		return nil, err
	}
	st, err := c.statement(ctx, query)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return c.sqliteConn.ExecContext(ctx, query, args)
	}
	return st.stmt.ExecContext(ctx, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	ctx, err := runToEnd(ctx)
	if err != nil {
		return nil, err
	}
	st, err := c.statement(ctx, query)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return c.sqliteConn.QueryContext(ctx, query, args)
	}
	rows, err := st.stmt.QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	st.busy = true
	return &cachedRows{Rows: rows, st: st}, nil
}

func (c *cachingConn) Close() error {
	for q, st := range c.stmts {
		st.close()
		delete(c.stmts, q)
	}
	return c.sqliteConn.Close()
}

// cachedRows frees its statement for the next use when closed.
type cachedRows struct {
	driver.Rows
	st *cachedStmt
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	r.st.busy = false
	return err
}
