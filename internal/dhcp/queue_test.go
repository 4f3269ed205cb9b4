package dhcp

import (
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// arrival is a request in a queue test: its name, its client, its type and
// its secs. A client's requests of one type are one request and its
// retransmissions.
type arrival struct {
	name   string
	client byte
	mt     dhcpv4.MessageType
	secs   uint16
}

func jobOf(t *testing.T, a arrival) *job {
	t.Helper()
	mac := net.HardwareAddr{2, 0, 0, 0, 0, a.client}
	req, err := dhcpv4.New(dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(a.mt))
	if err != nil {
		t.Fatal(err)
	}
	req.TransactionID = dhcpv4.TransactionID{1, 2, 3, 4}
	req.NumSeconds = a.secs
	req.ServerHostName = a.name // carries the name through the queue
	pkt := req.ToBytes()
	h, err := peekHeader(pkt)
	if err != nil {
		t.Fatal(err)
	}
	return &job{pkt: pkt, class: classOf(h), key: h.key}
}

func nameOf(t *testing.T, j *job) string {
	t.Helper()
	req, err := dhcpv4.FromBytes(j.pkt)
	if err != nil {
		t.Fatal(err)
	}
	return req.ServerHostName
}

func TestQueueOrderAndOverflow(t *testing.T) {
	const (
		disc = dhcpv4.MessageTypeDiscover
		req  = dhcpv4.MessageTypeRequest
		rel  = dhcpv4.MessageTypeRelease
	)
	tests := []struct {
		name          string
		max           int
		push          []arrival
		wantDropped   []string // overflow: the request dropped to make room, or the new one
		wantDuplicate []string
		wantOrder     []string
	}{
		{
			name:      "room for all: finishing messages first, then DISCOVERs by secs, each first come first served",
			max:       10,
			push:      []arrival{{"d1", 1, disc, 0}, {"r1", 2, req, 0}, {"d2", 3, disc, 5}, {"d3", 4, disc, 0}, {"r2", 5, rel, 0}, {"d4", 6, disc, 60}, {"d5", 7, disc, 4}},
			wantOrder: []string{"r1", "r2", "d4", "d2", "d5", "d1", "d3"},
		},
		{
			name:        "full of fresh DISCOVERs: a REQUEST takes the newest one's place",
			max:         3,
			push:        []arrival{{"d1", 1, disc, 0}, {"d2", 2, disc, 0}, {"d3", 3, disc, 0}, {"r1", 4, req, 0}},
			wantDropped: []string{"d3"},
			wantOrder:   []string{"r1", "d1", "d2"},
		},
		{
			name:        "full: a DISCOVER that has waited longer takes a newer one's place",
			max:         2,
			push:        []arrival{{"d1", 1, disc, 0}, {"d2", 2, disc, 0}, {"d3", 3, disc, 12}, {"d4", 4, disc, 28}},
			wantDropped: []string{"d2", "d1"},
			wantOrder:   []string{"d4", "d3"},
		},
		{
			name:        "full: a DISCOVER no more urgent than the least urgent queued is dropped itself",
			max:         2,
			push:        []arrival{{"d1", 1, disc, 4}, {"d2", 2, disc, 5}, {"d3", 3, disc, 6}, {"d4", 4, disc, 0}},
			wantDropped: []string{"d3", "d4"},
			wantOrder:   []string{"d1", "d2"},
		},
		{
			name:        "full of REQUESTs: a new REQUEST is dropped, none queued is",
			max:         2,
			push:        []arrival{{"r1", 1, req, 0}, {"r2", 2, req, 0}, {"r3", 3, req, 0}, {"d1", 4, disc, 60}},
			wantDropped: []string{"r3", "d1"},
			wantOrder:   []string{"r1", "r2"},
		},
		{
			name:          "a retransmission no more urgent than its queued copy is a duplicate",
			max:           10,
			push:          []arrival{{"d1", 1, disc, 4}, {"d1 again", 1, disc, 5}, {"r1", 2, req, 0}, {"r1 again", 2, req, 4}},
			wantDuplicate: []string{"d1 again", "r1 again"},
			wantOrder:     []string{"r1", "d1"},
		},
		{
			name:      "a retransmission that has waited a class longer takes its copy's place",
			max:       10,
			push:      []arrival{{"d1", 1, disc, 0}, {"d2", 2, disc, 0}, {"d3", 3, disc, 4}, {"d1 after 4 s", 1, disc, 4}},
			wantOrder: []string{"d3", "d1 after 4 s", "d2"},
		},
		{
			name:        "full: a retransmission replaces its copy without dropping another",
			max:         2,
			push:        []arrival{{"d1", 1, disc, 0}, {"d2", 2, disc, 0}, {"d1 after 12 s", 1, disc, 12}, {"d3", 3, disc, 0}},
			wantDropped: []string{"d3"},
			wantOrder:   []string{"d1 after 12 s", "d2"},
		},
		{
			name:        "a dropped request's retransmission is queued afresh",
			max:         1,
			push:        []arrival{{"d1", 1, disc, 4}, {"d2", 2, disc, 0}, {"d2 after 12 s", 2, disc, 12}},
			wantDropped: []string{"d2", "d1"},
			wantOrder:   []string{"d2 after 12 s"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newQueue(tt.max)
			var dropped, duplicates []string
			for _, a := range tt.push {
				switch d, result := q.push(jobOf(t, a)); result {
				case overflow:
					dropped = append(dropped, nameOf(t, d))
				case duplicate:
					duplicates = append(duplicates, nameOf(t, d))
				}
			}
			q.close()
			var order []string
			for j := q.pop(); j != nil; j = q.pop() {
				order = append(order, nameOf(t, j))
				q.done(j)
			}
			if !slices.Equal(dropped, tt.wantDropped) {
				t.Errorf("dropped %v, want %v", dropped, tt.wantDropped)
			}
			if !slices.Equal(duplicates, tt.wantDuplicate) {
				t.Errorf("duplicates %v, want %v", duplicates, tt.wantDuplicate)
			}
			if !slices.Equal(order, tt.wantOrder) {
				t.Errorf("served %v, want %v", order, tt.wantOrder)
			}
			if len(q.known) != 0 {
				t.Errorf("%d requests still known after all were served", len(q.known))
			}
		})
	}
}

// TestQueueWorkers runs pushes, retransmissions among them, against waiting
// workers: every request queued is served, none that was not, nothing stays
// known, and close ends the workers.
func TestQueueWorkers(t *testing.T) {
	q := newQueue(64)
	var mu sync.Mutex
	served := map[requestKey]int{}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := q.pop(); j != nil; j = q.pop() {
				mu.Lock()
				served[j.key]++
				mu.Unlock()
				q.done(j)
			}
		}()
	}
	pushed := map[requestKey]bool{}
	for i := 0; i < 5000; i++ {
		mt := dhcpv4.MessageTypeDiscover
		if i%3 == 0 {
			mt = dhcpv4.MessageTypeRequest
		}
		j := jobOf(t, arrival{fmt.Sprint(i), byte(i % 200), mt, uint16(i % 70)})
		if _, result := q.push(j); result == queued {
			pushed[j.key] = true
		}
	}
	q.close()
	wg.Wait()
	for k := range pushed {
		if served[k] == 0 {
			t.Errorf("request %v queued but never served", k)
		}
	}
	for k, n := range served {
		if !pushed[k] {
			t.Errorf("request %v served %d times but never queued", k, n)
		}
	}
	if len(q.known) != 0 {
		t.Errorf("%d requests still known after all were served", len(q.known))
	}
}

// TestQueueForgetsSkippedCopies: clients that each retransmit into a higher
// class leave skipped copies behind; they do not pile up in a class nobody
// serves while others are busy, nor keep their packets.
func TestQueueForgetsSkippedCopies(t *testing.T) {
	q := newQueue(100000)
	for c := 0; c < 250; c++ {
		for _, secs := range []uint16{0, 4, 12, 28} {
			if _, result := q.push(jobOf(t, arrival{"d", byte(c), dhcpv4.MessageTypeDiscover, secs})); result != queued {
				t.Fatalf("client %d secs %d: %v, want queued", c, secs, result)
			}
		}
	}
	if q.n != 250 {
		t.Errorf("%d jobs queued, want 250", q.n)
	}
	for c, d := range q.classes {
		if d.len-d.live > d.live+64 {
			t.Errorf("class %d holds %d skipped copies for %d jobs", c, d.len-d.live, d.live)
		}
		for i := 0; i < d.len; i++ {
			if j := d.buf[(d.head+i)%len(d.buf)]; j.skip && j.pkt != nil {
				t.Fatalf("class %d keeps a skipped copy's packet", c)
			}
		}
	}
}

// TestQueueCopiesPackets: a queued job keeps a copy of its packet, not the
// reader's buffer, which the next read overwrites.
func TestQueueCopiesPackets(t *testing.T) {
	q := newQueue(16)
	reader := make([]byte, 0, 4096)
	for i := 0; i < 3; i++ {
		j := jobOf(t, arrival{fmt.Sprint(i), byte(i), dhcpv4.MessageTypeDiscover, 0})
		reader = append(reader[:0], j.pkt...)
		j.pkt = reader
		if _, result := q.push(j); result != queued {
			t.Fatalf("job %d: %v", i, result)
		}
		clear(reader) // the reader's next packet
	}
	for i := 0; i < 3; i++ {
		if got := nameOf(t, q.pop()); got != fmt.Sprint(i) {
			t.Fatalf("job %d reads as %q", i, got)
		}
	}
}
