package service

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestGroup(t *testing.T) {
	boom := errors.New("boom")
	waitCtx := func(ctx context.Context) error { <-ctx.Done(); return nil }
	tests := []struct {
		name     string
		services []func(context.Context) error
		cancel   bool // end the caller's context instead
		want     error
	}{
		{"a failing service stops the others", []func(context.Context) error{waitCtx, func(context.Context) error { return boom }}, false, boom},
		{"the caller's context stops them all", []func(context.Context) error{waitCtx, waitCtx}, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ready := make(chan struct{})
			started := make(chan struct{})
			close(ready)
			if tt.cancel {
				go func() { <-started; cancel() }()
			}
			done := make(chan error, 1)
			go func() { done <- Group(ctx, []<-chan struct{}{ready}, func() { close(started) }, tt.services...) }()
			select {
			case err := <-done:
				if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
					t.Errorf("Group: %v, want %v", err, tt.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Group did not return")
			}
		})
	}
}
