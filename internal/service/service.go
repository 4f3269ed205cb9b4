// Package service runs a process's services side by side.
package service

import (
	"context"
	"errors"
	"sync"
)

// Group runs every service until ctx ends or one of them fails, which stops
// the others, and returns their errors joined. Once every channel in ready
// is closed, started (if set) is called.
func Group(ctx context.Context, ready []<-chan struct{}, started func(), services ...func(context.Context) error) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	errc := make(chan error, len(services))
	for _, run := range services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil {
				errc <- err
				stop()
			}
		}()
	}
	go func() {
		for _, r := range ready {
			select {
			case <-r:
			case <-ctx.Done():
				return
			}
		}
		if started != nil {
			started()
		}
	}()
	wg.Wait()
	close(errc)
	var errs []error
	for e := range errc {
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}
