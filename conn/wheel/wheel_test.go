package wheel

import (
	"math/rand"
	"testing"
	"unsafe"
)

type item struct {
	id    int
	timer Node[item]
	fired []uint64
}

// itemOf finds the item a timer is embedded in, the way conn finds its
// connections: by the node's offset.
func itemOf(n *Node[item]) *item {
	return (*item)(unsafe.Pointer(uintptr(unsafe.Pointer(n)) - unsafe.Offsetof(item{}.timer)))
}

func TestScheduleFiresAtTick(t *testing.T) {
	var w *Wheel[item]
	w = New(8, itemOf, func(it *item) { it.fired = append(it.fired, w.Now()) })
	cases := []uint64{1, 2, 7, 8, 9, 16, 17, 100}
	items := make([]*item, len(cases))
	for i, d := range cases {
		items[i] = &item{id: i}
		w.Schedule(&items[i].timer, d)
	}
	if w.Len() != len(cases) {
		t.Fatalf("Len = %d, want %d", w.Len(), len(cases))
	}
	w.Advance(200)
	for i, d := range cases {
		if got := items[i].fired; len(got) != 1 || got[0] != d {
			t.Errorf("timer %d scheduled for %d fired at %v", i, d, got)
		}
	}
	if w.Len() != 0 {
		t.Fatalf("Len after firing = %d", w.Len())
	}
}

func TestRescheduleAndStop(t *testing.T) {
	var w *Wheel[item]
	w = New(4, itemOf, func(it *item) { it.fired = append(it.fired, w.Now()) })
	a, b := &item{}, &item{}
	w.Schedule(&a.timer, 3)
	w.Schedule(&b.timer, 3)
	w.Advance(2)
	w.Schedule(&a.timer, 5) // moves a to tick 7
	w.Stop(&b.timer)
	w.Stop(&b.timer) // idempotent
	w.Advance(10)
	if len(a.fired) != 1 || a.fired[0] != 7 {
		t.Fatalf("a fired at %v, want [7]", a.fired)
	}
	if len(b.fired) != 0 {
		t.Fatalf("stopped b fired at %v", b.fired)
	}
	if a.timer.Armed() || b.timer.Armed() {
		t.Fatal("timers still armed")
	}
}

// A fire function may re-arm its own timer, and stop another timer that is
// due in the same tick; the stopped one must not fire.
func TestFireMayRearmAndStopOthers(t *testing.T) {
	var w *Wheel[item]
	var others []*item
	w = New(4, itemOf, func(it *item) {
		it.fired = append(it.fired, w.Now())
		if it.id == 0 {
			for _, o := range others {
				w.Stop(&o.timer)
			}
			if len(it.fired) < 3 {
				w.Schedule(&it.timer, 4) // same slot, next revolution
			}
		}
	})
	first := &item{id: 0}
	w.Schedule(&first.timer, 2)
	for i := 1; i <= 3; i++ {
		o := &item{id: i}
		w.Schedule(&o.timer, 2)
		others = append(others, o)
	}
	w.Advance(20)
	if want := []uint64{2, 6, 10}; len(first.fired) != 3 || first.fired[0] != want[0] || first.fired[2] != want[2] {
		t.Fatalf("first fired at %v, want %v", first.fired, want)
	}
	for _, o := range others {
		if len(o.fired) != 0 {
			t.Fatalf("stopped timer %d fired at %v", o.id, o.fired)
		}
	}
}

// Against a naive reference: random schedules and stops over many ticks.
func TestRandomAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var w *Wheel[item]
	w = New(16, itemOf, func(it *item) { it.fired = append(it.fired, w.Now()) })
	items := make([]*item, 200)
	due := make([]uint64, len(items)) // 0 = unarmed
	want := make([][]uint64, len(items))
	for i := range items {
		items[i] = &item{id: i}
	}
	for tick := uint64(0); tick < 500; tick++ {
		for k := 0; k < 5; k++ {
			i := rng.Intn(len(items))
			if rng.Intn(4) == 0 {
				w.Stop(&items[i].timer)
				due[i] = 0
			} else {
				d := uint64(rng.Intn(60))
				if d == 0 {
					d = 1
				}
				w.Schedule(&items[i].timer, d)
				due[i] = tick + d
			}
		}
		w.Advance(tick + 1)
		for i := range items {
			if due[i] == tick+1 {
				want[i] = append(want[i], tick+1)
				due[i] = 0
			}
		}
	}
	for i := range items {
		if len(want[i]) != len(items[i].fired) {
			t.Fatalf("item %d fired %v, want %v", i, items[i].fired, want[i])
		}
		for j := range want[i] {
			if want[i][j] != items[i].fired[j] {
				t.Fatalf("item %d fired %v, want %v", i, items[i].fired, want[i])
			}
		}
	}
}

func BenchmarkReschedule(b *testing.B) {
	w := New(256, itemOf, func(*item) {})
	its := make([]item, 1024)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		w.Schedule(&its[i&1023].timer, uint64(i%300+1))
	}
}

// The owner function finds each fired timer's item, wherever the node sits.
func TestOwnerByOffset(t *testing.T) {
	var fired []*item
	w := New(8, itemOf, func(it *item) { fired = append(fired, it) })
	items := []*item{{id: 1}, {id: 2}, {id: 3}}
	for i, it := range items {
		w.Schedule(&it.timer, uint64(i+1))
	}
	w.Advance(10)
	for i, it := range fired {
		if it != items[i] {
			t.Fatalf("timer %d fired for item %d", i, it.id)
		}
	}
}
