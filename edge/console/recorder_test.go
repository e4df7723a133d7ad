package console

import (
	"fmt"
	"testing"
	"time"
)

func TestRecorder(t *testing.T) {
	r := NewRecorder(4)
	if got := r.Recent(Filter{}, 10); len(got) != 0 || r.Len() != 0 || r.Last() != 0 {
		t.Fatalf("empty recorder: %v len %d last %d", got, r.Len(), r.Last())
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 6 {
		r.Record(Decision{Time: t0.Add(time.Duration(i) * time.Second), MAC: fmt.Sprintf("aa:bb:cc:dd:ee:%02x", i%2),
			Identity: fmt.Sprintf("User%d@Example.org", i), Result: "accept"})
	}
	seqs := func(ds []Decision) []uint64 {
		var s []uint64
		for _, d := range ds {
			s = append(s, d.Seq)
		}
		return s
	}
	tests := []struct {
		name  string
		f     Filter
		limit int
		want  []uint64
	}{
		{"newest first, ring of 4", Filter{}, 10, []uint64{6, 5, 4, 3}},
		{"limit", Filter{}, 2, []uint64{6, 5}},
		{"zero limit", Filter{}, 0, nil},
		{"by MAC", Filter{MAC: "aa:bb:cc:dd:ee:01"}, 10, []uint64{6, 4}},
		{"by identity, any case", Filter{Identity: "USER4@"}, 10, []uint64{5}},
		{"after", Filter{After: 4}, 10, []uint64{6, 5}},
		{"after the last", Filter{After: 6}, 10, nil},
		{"after beyond the ring", Filter{After: 1}, 10, []uint64{6, 5, 4, 3}},
		{"MAC and after", Filter{MAC: "aa:bb:cc:dd:ee:00", After: 3}, 10, []uint64{5}},
		{"no match", Filter{MAC: "00:00:00:00:00:00"}, 10, nil},
	}
	for _, tt := range tests {
		got := seqs(r.Recent(tt.f, tt.limit))
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
	if r.Len() != 4 || r.Last() != 6 {
		t.Errorf("len %d last %d", r.Len(), r.Last())
	}
}

func TestRecorderConcurrent(t *testing.T) {
	r := NewRecorder(64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 1000 {
			r.Record(Decision{MAC: fmt.Sprint(i % 7)})
		}
	}()
	for range 100 {
		ds := r.Recent(Filter{MAC: "3"}, 10)
		for i := 1; i < len(ds); i++ {
			if ds[i].Seq >= ds[i-1].Seq {
				t.Fatalf("not newest first: %v", ds)
			}
		}
	}
	<-done
	if r.Last() != 1000 {
		t.Fatalf("last %d", r.Last())
	}
}
