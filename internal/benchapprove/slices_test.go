package main

import "testing"

// TestSliceBounds: the slices of a round cover its requests once, in
// order; every slice but the last gives each worker the same number of
// requests (its length a multiple of the workers), at least one each; the
// last takes what is left over.
func TestSliceBounds(t *testing.T) {
	for _, c := range []struct{ n, workers, slices int }{
		{1500, 32, 5}, {1500, 32, 1}, {1500, 32, 46}, {64, 32, 2}, {100, 7, 3}, {10, 1, 10}, {1000, 200, 5},
	} {
		next := 0
		for sl := 0; sl < c.slices; sl++ {
			lo, hi := sliceBounds(c.n, c.workers, c.slices, sl)
			if lo != next || hi <= lo || hi > c.n {
				t.Fatalf("%+v: slice %d is [%d, %d), want it to start at %d and hold some of %d", c, sl, lo, hi, next, c.n)
			}
			if sl < c.slices-1 && ((hi-lo)%c.workers != 0 || hi-lo < c.workers) {
				t.Errorf("%+v: slice %d holds %d requests, not a whole number of passes of %d workers", c, sl, hi-lo, c.workers)
			}
			next = hi
		}
		if next != c.n {
			t.Errorf("%+v: the slices end at %d", c, next)
		}
	}
}
