package store

import (
	"context"
	"database/sql"
	"sync/atomic"
	"time"
)

// checkpointer copies SQLite's write-ahead log into the database file in a
// goroutine of its own. SQLite's automatic checkpoint (turned off in
// OpenSQLite) runs inside whichever commit crosses its threshold and ends in
// an fsync: with the disk busy writing back other files, that fsync held the
// fleet's writer long enough for DHCP replies to queue behind it (measured:
// 28,000 DORA/s offered, 22,000 answered for the rest of the run). Commits
// themselves do not sync (synchronous=NORMAL), but for the log's header in
// the one commit that starts reusing the log after a checkpoint.
//
// It runs after a statement or transaction, at most once per
// checkpointEvery, so the log holds about that long of writes; an idle
// database is not touched. One with nothing new to copy costs a look at the
// log's index, no disk write.
type checkpointer struct {
	db          *sql.DB
	kick        chan struct{}
	stop        context.CancelFunc
	done        chan struct{}
	every       time.Duration // checkpointEvery; shorter in tests
	resetFrames int           // walResetFrames; smaller in tests
	overdue     atomic.Bool   // the log passed resetFrames
}

// checkpointEvery spaces checkpoints: each copies every page written since
// the last once, however often it was written (a busy index page is written
// to the log at every commit).
const checkpointEvery = time.Second

// walResetFrames bounds the log (64 MiB of 4 KiB pages). SQLite starts the
// log over only at a write that finds every frame already copied, which a
// writer that never pauses (a storm, a DHCP load) never does: measured, the
// log grew to 134 MB in 10 s at 28,000 DORA/s. Past the bound the next
// transaction first runs a RESTART checkpoint itself (from this goroutine
// it waited behind a writer that never let go), which copies the frames
// written since the PASSIVE one and lets that transaction start the log
// over. It is the only checkpoint a transaction waits for.
const walResetFrames = 16384

func startCheckpointer(db *sql.DB, every time.Duration, resetFrames int) *checkpointer {
	ctx, stop := context.WithCancel(context.Background())
	c := &checkpointer{db: db, kick: make(chan struct{}, 1), stop: stop, done: make(chan struct{}),
		every: every, resetFrames: resetFrames}
	go c.run(ctx)
	return c
}

// committed tells the checkpointer that the log may have grown. It never blocks.
func (c *checkpointer) committed() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *checkpointer) run(ctx context.Context) {
	defer close(c.done)
	pause := time.NewTimer(0)
	defer pause.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		}
		// PASSIVE: copies what no reader still needs and never blocks a
		// writer. One that fails or stops short is taken up at the next
		// commit; the log only grows meanwhile.
		var busy, logged, copied int
		err := c.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logged, &copied)
		if err == nil && logged > c.resetFrames {
			c.overdue.Store(true)
		}
		pause.Reset(c.every)
		select {
		case <-ctx.Done():
			return
		case <-pause.C:
		}
	}
}

// resetIfOverdue starts an overdue log over, before a transaction: see
// walResetFrames. One that fails (a reader still on the log) is tried again
// after the next checkpoint.
func (c *checkpointer) resetIfOverdue(ctx context.Context) {
	if !c.overdue.CompareAndSwap(true, false) {
		return
	}
	var busy, logged, copied int
	c.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(RESTART)`).Scan(&busy, &logged, &copied)
}

// close stops the checkpointer; closing the database then checkpoints what is left.
func (c *checkpointer) close() {
	c.stop()
	<-c.done
}
