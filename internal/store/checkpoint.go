package store

import (
	"context"
	"database/sql"
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
	db   *sql.DB
	kick chan struct{}
	stop context.CancelFunc
	done chan struct{}
}

// checkpointEvery spaces checkpoints: each copies every page written since
// the last once, however often it was written (a busy index page is written
// to the log at every commit).
const checkpointEvery = time.Second

func startCheckpointer(db *sql.DB) *checkpointer {
	ctx, stop := context.WithCancel(context.Background())
	c := &checkpointer{db: db, kick: make(chan struct{}, 1), stop: stop, done: make(chan struct{})}
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
		c.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logged, &copied)
		pause.Reset(checkpointEvery)
		select {
		case <-ctx.Done():
			return
		case <-pause.C:
		}
	}
}

// close stops the checkpointer; closing the database then checkpoints what is left.
func (c *checkpointer) close() {
	c.stop()
	<-c.done
}
