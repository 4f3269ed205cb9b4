package counter

import (
	"sync"
	"testing"
)

// TestCounterIsTheNamedCount: a counter taken once and Add by name count
// the same thing, from many goroutines, and a nil Set counts nothing.
func TestCounterIsTheNamedCount(t *testing.T) {
	tests := []struct {
		name string
		set  *Set
		want int64
	}{
		{"set", &Set{}, 300},
		{"nil set", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var wg sync.WaitGroup
			for range 100 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					tt.set.Counter("tx_OFFER").Add(1)
					tt.set.Add("tx_OFFER")
					tt.set.AddN("tx_OFFER", 1)
				}()
			}
			wg.Wait()
			if got := tt.set.Get("tx_OFFER"); got != tt.want {
				t.Errorf("tx_OFFER = %d, want %d", got, tt.want)
			}
			if got := tt.set.Snapshot()["tx_OFFER"]; got != tt.want {
				t.Errorf("snapshot tx_OFFER = %d, want %d", got, tt.want)
			}
		})
	}
}
