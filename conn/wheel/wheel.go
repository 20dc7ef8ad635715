// Package wheel is a hashed timing wheel with intrusive nodes: one timer per
// connection costs no allocation, and arming, re-arming and stopping are O(1).
//
// A Wheel is not safe for concurrent use. In pushd each event loop owns one
// and touches it only from its own goroutine; the engine's ticker asks the
// loop to call Advance.
package wheel

// Node is a timer embedded in the value it belongs to (its owner). The zero
// value is an unarmed timer. A Node holds no pointer to its owner: the
// wheel's owner function finds the owner from the node (typically by the
// node's offset in the owner's struct), which saves a word in every owner.
type Node[T any] struct {
	prev, next *Node[T]
	at         uint64 // tick at which it is due
}

// Armed reports whether n is scheduled. Owner goroutine only.
func (n *Node[T]) Armed() bool { return n.next != nil }

func (n *Node[T]) unlink() {
	n.prev.next = n.next
	n.next.prev = n.prev
	n.prev, n.next = nil, nil
}

// list is a circular doubly linked list with a sentinel head.
type list[T any] struct{ head Node[T] }

func (l *list[T]) init() { l.head.prev, l.head.next = &l.head, &l.head }

func (l *list[T]) empty() bool { return l.head.next == &l.head }

func (l *list[T]) push(n *Node[T]) {
	n.prev = l.head.prev
	n.next = &l.head
	l.head.prev.next = n
	l.head.prev = n
}

// moveTo moves every node of l to the empty list dst.
func (l *list[T]) moveTo(dst *list[T]) {
	if l.empty() {
		return
	}
	dst.head.next, dst.head.prev = l.head.next, l.head.prev
	dst.head.next.prev, dst.head.prev.next = &dst.head, &dst.head
	l.init()
}

// Wheel is a hashed timing wheel. Timers further out than one revolution
// stay in their slot and are skipped until their tick comes. A Wheel and
// its Nodes belong to one goroutine (in pushd, one event loop); no method
// is safe for concurrent use.
type Wheel[T any] struct {
	slots   []list[T]
	mask    uint64
	now     uint64
	fire    func(*T)
	pending list[T] // scratch list used while a slot is processed
	count   int
	owner   func(*Node[T]) *T
}

// New returns a wheel with at least the given number of slots (rounded up to
// a power of two) that calls fire with owner(n) for each timer n that comes
// due. fire runs on the goroutine that calls Advance and may arm or stop any
// timer, including the one that fired.
func New[T any](slots int, owner func(*Node[T]) *T, fire func(*T)) *Wheel[T] {
	size := 1
	for size < slots {
		size <<= 1
	}
	w := &Wheel[T]{slots: make([]list[T], size), mask: uint64(size - 1), fire: fire, owner: owner}
	for i := range w.slots {
		w.slots[i].init()
	}
	w.pending.init()
	return w
}

// Now returns the current tick. Owner goroutine only.
func (w *Wheel[T]) Now() uint64 { return w.now }

// Len returns the number of armed timers. Owner goroutine only.
func (w *Wheel[T]) Len() int { return w.count }

// Schedule arms n to fire after the given number of ticks (at least 1),
// replacing any earlier schedule. Owner goroutine only.
func (w *Wheel[T]) Schedule(n *Node[T], ticks uint64) {
	if n.next != nil {
		n.unlink()
		w.count--
	}
	if ticks == 0 {
		ticks = 1
	}
	n.at = w.now + ticks
	w.slots[n.at&w.mask].push(n)
	w.count++
}

// ScheduleAt arms n to fire at tick at, or at the next tick if at is not
// in the future, replacing any earlier schedule. Owner goroutine only.
func (w *Wheel[T]) ScheduleAt(n *Node[T], at uint64) {
	if at <= w.now {
		at = w.now + 1
	}
	w.Schedule(n, at-w.now)
}

// Stop disarms n. Stopping an unarmed timer does nothing. Owner goroutine
// only.
func (w *Wheel[T]) Stop(n *Node[T]) {
	if n.next != nil {
		n.unlink()
		w.count--
	}
}

// Advance moves the wheel forward to tick `to`, firing every timer that
// comes due on the way, in tick order. It does nothing if to ≤ Now. Owner
// goroutine only.
func (w *Wheel[T]) Advance(to uint64) {
	for w.now < to {
		w.now++
		w.slots[w.now&w.mask].moveTo(&w.pending)
		// Pop one node at a time: fire may stop or re-arm any node,
		// including ones still waiting in pending.
		for !w.pending.empty() {
			n := w.pending.head.next
			n.unlink()
			if n.at > w.now {
				w.slots[n.at&w.mask].push(n)
				continue
			}
			w.count--
			w.fire(w.owner(n))
		}
	}
}
