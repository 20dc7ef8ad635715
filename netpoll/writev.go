package netpoll

import (
	"unsafe"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/pushd/pushd/conn"
)

// writev writes bs to the connection with one writev(2) through the loop's
// reusable iovec array. gnet's own Writev goes through x/sys/unix.Writev,
// which allocates an iovec array for every call with more than 8 buffers:
// with batched pushes that is one allocation per socket per batch. Only
// what the kernel does not take (rare, and never on the fast path) goes to
// gnet's Writev, which queues it in the connection's outbound buffer and
// watches for writability. Loop goroutine only.
func (l *loop) writev(tr conn.Transport, bs [][]byte) (int, error) {
	gc := tr.(gnet.Conn)
	if gc.OutboundBuffered() > 0 {
		return gc.Writev(bs) // queue behind what is already waiting
	}
	iov := l.iovecs[:0]
	total := 0
	for _, b := range bs {
		if len(b) > 0 {
			iov = append(iov, unix.Iovec{Base: &b[0], Len: uint64(len(b))})
			total += len(b)
		}
	}
	if len(iov) == 0 {
		return 0, nil
	}
	// RawSyscall, not Syscall: writev on a non-blocking socket never blocks
	// (it returns EAGAIN), so the runtime need not account for it as a
	// blocking system call. Syscall's entersyscall/exitsyscall around each
	// of thousands of writevs per second kept sysmon polling to retake the
	// loop's P: measured on the 1×5,000 fan-out benchmark, sysmon woke
	// ~2,300 times/s and used ~4% of a core; with RawSyscall ~120 times/s
	// and ~0.2%, and CPU per delivery fell 6–8% (docs/benchmarks.md). The
	// cost: a garbage-collection stop waits for a writev in progress, a few
	// microseconds to a millisecond for the largest batches.
	r, _, errno := unix.RawSyscall(unix.SYS_WRITEV, uintptr(gc.Fd()), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	clear(iov) // drop the buffer pointers
	l.iovecs = iov[:0]
	n := int(r)
	switch errno {
	case 0:
	case unix.EAGAIN, unix.EINTR:
		n = 0
	default:
		return gc.Writev(bs) // let gnet see the error and close the connection
	}
	if n == total {
		return n, nil
	}
	for len(bs) > 0 && n >= len(bs[0]) {
		n -= len(bs[0])
		bs = bs[1:]
	}
	if n > 0 {
		bs[0] = bs[0][n:]
	}
	if _, err := gc.Writev(bs); err != nil {
		return 0, err
	}
	return total, nil
}
