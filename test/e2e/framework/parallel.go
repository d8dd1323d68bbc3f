package framework

import (
	"sync"
	"testing"
)

// Parallel runs f for 0..n-1 on a few workers, as a cluster of thousands of
// objects is created through the API server, and fails the test on the first
// error.
func Parallel(t testing.TB, n int, f func(i int) error) {
	t.Helper()
	const workers = 16
	next := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for i := range n {
		select {
		case next <- i:
		case err := <-errs:
			close(next)
			wg.Wait()
			t.Fatal(err)
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}
