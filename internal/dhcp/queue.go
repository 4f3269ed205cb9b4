package dhcp

import (
	"bytes"
	"math/bits"
	"sync"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// queue holds the requests waiting for a worker, and knows which are
// queued or being answered, so that a retransmission is not answered twice.
// When it is full, it keeps what finishes work already begun and drops what
// would start new work:
//
//   - Every message but a DISCOVER comes first. A REQUEST answers an OFFER a
//     server made, or renews a lease in use; dropping it wastes that OFFER
//     and, after its retransmissions, sends the client back to DISCOVER.
//   - Among DISCOVERs, the client that has waited longest comes first, by the
//     secs field (RFC 2131: seconds since the client began). In a storm, a
//     client whose DISCOVERs were dropped retransmits ever later (4 s doubling
//     to 64 s); served by arrival, it would keep losing to newcomers.
//
// Within a class it is first come, first served. The classes of DISCOVER are
// powers of two of secs, so that the retransmissions of RFC 2131's backoff
// each land one class higher. A retransmission of a request still queued in
// a lower class takes its place in its own class (the queued copy is skipped),
// so that the request's wait counts; any other retransmission of a request
// queued or being answered is dropped.
type queue struct {
	mu      sync.Mutex
	ready   sync.Cond
	classes [classes]deque
	known   map[requestKey]*job // queued or being answered
	n, max  int                 // jobs queued, not counting skipped copies
	closed  bool
}

// classes: DISCOVER by bits.Len16(secs) (0-16), then everything else.
const (
	classes     = 18
	classFinish = classes - 1
)

func newQueue(max int) *queue {
	q := &queue{max: max, known: map[requestKey]*job{}}
	q.ready.L = &q.mu
	return q
}

func classOf(h header) int {
	if h.key.mt != dhcpv4.MessageTypeDiscover {
		return classFinish
	}
	return bits.Len16(h.secs)
}

// pushed is what became of a request handed to the queue.
type pushed int

const (
	queued    pushed = iota
	duplicate        // a retransmission of a request queued as urgently, or being answered
	overflow         // the queue was full: the dropped request is j or one less urgent
)

// push queues j. When the queue is full it makes room by dropping the newest
// job of the lowest class below j's, or else drops j itself. result says
// what became of j; dropped is the job not kept (j itself when duplicate).
func (q *queue) push(j *job) (dropped *job, result pushed) {
	q.mu.Lock()
	defer q.mu.Unlock()
	old, retransmitted := q.known[j.key]
	if retransmitted && (old.started || old.class >= j.class) {
		return j, duplicate
	}
	if !retransmitted && q.n >= q.max {
		low := q.lowest()
		if low >= j.class {
			return j, overflow
		}
		dropped, result = q.classes[low].popLive((*deque).popBack), overflow
		q.n--
		delete(q.known, dropped.key)
	}
	if retransmitted { // j takes its queued copy's place
		old.skip, old.pkt = true, nil
		q.classes[old.class].skipped()
		q.n--
	}
	// j.pkt is the reader's buffer until here: a queued job keeps a copy.
	j.pkt = bytes.Clone(j.pkt)
	q.known[j.key] = j
	q.classes[j.class].pushBack(j)
	q.n++
	q.ready.Signal()
	return dropped, result
}

// pop waits for the first job of the highest class. After close it returns
// what is left, then nil. The caller calls done once it has answered.
func (q *queue) pop() *job {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.n == 0 {
		if q.closed {
			return nil
		}
		q.ready.Wait()
	}
	for c := classFinish; ; c-- {
		if q.classes[c].live > 0 {
			j := q.classes[c].popLive((*deque).popFront)
			q.n--
			j.started = true
			return j
		}
	}
}

// done forgets a request a worker has finished with.
func (q *queue) done(j *job) {
	q.mu.Lock()
	if q.known[j.key] == j {
		delete(q.known, j.key)
	}
	q.mu.Unlock()
}

// close lets the workers finish what is queued and then stop.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.ready.Broadcast()
}

func (q *queue) lowest() int {
	for c := range q.classes {
		if q.classes[c].live > 0 {
			return c
		}
	}
	return -1
}

// deque is a growable ring of jobs: workers take from the front, a full
// queue drops from the back. Skipped copies stay in it until they reach an
// end or outnumber the live jobs, when it is compacted.
type deque struct {
	buf             []*job
	head, len, live int
}

func (d *deque) pushBack(j *job) {
	if d.len == len(d.buf) {
		d.resize(max(16, 2*d.len))
	}
	d.buf[(d.head+d.len)%len(d.buf)] = j
	d.len++
	d.live++
}

// resize copies the live jobs, in order, into a ring of size n.
func (d *deque) resize(n int) {
	buf := make([]*job, n)
	k := 0
	for i := 0; i < d.len; i++ {
		if j := d.buf[(d.head+i)%len(d.buf)]; !j.skip {
			buf[k] = j
			k++
		}
	}
	d.buf, d.head, d.len = buf, 0, k
}

// skipped counts one of its jobs become a skipped copy.
func (d *deque) skipped() {
	d.live--
	if d.len-d.live > d.live+64 {
		d.resize(max(16, 2*d.live))
	}
}

// popLive takes the first live job from one end, discarding skipped copies
// on the way.
func (d *deque) popLive(take func(*deque) *job) *job {
	for {
		if j := take(d); !j.skip {
			d.live--
			return j
		}
	}
}

func (d *deque) popFront() *job {
	j := d.buf[d.head]
	d.buf[d.head] = nil
	d.head = (d.head + 1) % len(d.buf)
	d.len--
	return j
}

func (d *deque) popBack() *job {
	i := (d.head + d.len - 1) % len(d.buf)
	j := d.buf[i]
	d.buf[i] = nil
	d.len--
	return j
}
