package ratelimit

import (
	"testing"
	"time"
)

func TestAllowBurstThenRefill(t *testing.T) {
	now := time.Unix(0, 0)
	l := New(1, 3, 10)
	l.now = func() time.Time { return now }
	for i := range 3 {
		if !l.Allow("a") {
			t.Fatalf("event %d of the burst was refused", i+1)
		}
	}
	if l.Allow("a") {
		t.Fatal("fourth event within the same instant was allowed, want refused")
	}
	if !l.Allow("b") {
		t.Fatal("another key was refused, want its own bucket")
	}
	now = now.Add(time.Second)
	if !l.Allow("a") {
		t.Fatal("event after one second (rate 1/s) was refused")
	}
}

func TestPruneBoundsKeys(t *testing.T) {
	now := time.Unix(0, 0)
	l := New(1, 1, 4)
	l.now = func() time.Time { return now }
	for _, k := range []string{"a", "b", "c", "d", "e", "f"} {
		l.Allow(k)
	}
	if got := len(l.buckets); got > 4 {
		t.Fatalf("limiter keeps %d keys, want at most 4", got)
	}
}
