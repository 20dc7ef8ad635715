//go:build linux

package worker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Client is the coordinator's handle on one worker, in-process or a child
// process; both run the same Engine. Its methods are safe for concurrent
// use.
type Client interface {
	// Do sends req (its ID is assigned by Do) and waits for the response.
	// If ctx ends first the request is cancelled in the worker, and Do
	// still waits briefly for the worker to acknowledge.
	Do(ctx context.Context, req Request) (Response, error)
	// Close stops the worker, dropping its connections.
	Close() error
}

// Local runs an Engine in the calling process.
type Local struct {
	e  *Engine
	id atomic.Uint64
}

// NewLocal starts an in-process worker. Safe to call from any goroutine.
func NewLocal(s Setup) (*Local, error) {
	e, err := New(s)
	if err != nil {
		return nil, err
	}
	return &Local{e: e}, nil
}

// Do implements Client.
func (w *Local) Do(ctx context.Context, req Request) (Response, error) {
	req.ID = w.id.Add(1)
	resp := w.e.Handle(ctx, req)
	return resp, respErr(resp)
}

// Close implements Client.
func (w *Local) Close() error {
	w.e.Close()
	return nil
}

func respErr(r Response) error {
	if r.Err != "" {
		return errors.New(r.Err)
	}
	return nil
}

// Process is a worker running as a child process that speaks JSON lines on
// its stdin and stdout (see Serve).
type Process struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser

	wmu sync.Mutex // wmu serialises writes to stdin
	enc *json.Encoder

	mu      sync.Mutex
	pending map[uint64]chan Response // mu guards pending and dead
	dead    error
	id      atomic.Uint64
	exited  chan struct{}
}

// StartProcess starts cmd as a worker and sends it s. The child is killed
// if this process dies (Pdeathsig) and exits by itself when its stdin
// closes. Safe to call from any goroutine.
func StartProcess(cmd *exec.Cmd, s Setup) (*Process, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, stdin: stdin, enc: json.NewEncoder(stdin),
		pending: make(map[uint64]chan Response), exited: make(chan struct{})}
	go p.readLoop(stdout)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := p.Do(ctx, Request{Op: "setup", Setup: &s}); err != nil {
		p.Close()
		return nil, fmt.Errorf("worker %d: setup: %w", s.Index, err)
	}
	return p, nil
}

func (p *Process) readLoop(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20) // full stats carry histograms
	var err error
	for sc.Scan() {
		var resp Response
		if err = json.Unmarshal(sc.Bytes(), &resp); err != nil {
			break
		}
		p.mu.Lock()
		ch := p.pending[resp.ID]
		delete(p.pending, resp.ID)
		p.mu.Unlock()
		if ch != nil {
			ch <- resp
		}
	}
	if err == nil {
		err = sc.Err()
	}
	if err == nil {
		err = errors.New("worker process exited")
	}
	p.mu.Lock()
	p.dead = err
	for _, ch := range p.pending {
		close(ch)
	}
	clear(p.pending)
	p.mu.Unlock()
	close(p.exited)
}

func (p *Process) send(req Request) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	return p.enc.Encode(req)
}

// Do implements Client.
func (p *Process) Do(ctx context.Context, req Request) (Response, error) {
	req.ID = p.id.Add(1)
	ch := make(chan Response, 1)
	p.mu.Lock()
	if p.dead != nil {
		p.mu.Unlock()
		return Response{}, p.dead
	}
	p.pending[req.ID] = ch
	p.mu.Unlock()
	if err := p.send(req); err != nil {
		return Response{}, err
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			return Response{}, p.dead
		}
		return resp, respErr(resp)
	case <-ctx.Done():
	}
	p.send(Request{ID: p.id.Add(1), Op: OpCancel, Cancel: req.ID})
	select {
	case resp, ok := <-ch:
		if ok && resp.Err == "" {
			return resp, ctx.Err()
		}
	case <-time.After(5 * time.Second):
	}
	return Response{}, ctx.Err()
}

// Close implements Client: it asks the worker to exit, closes its stdin
// and waits for it, killing it after 10 s.
func (p *Process) Close() error {
	p.send(Request{ID: p.id.Add(1), Op: OpExit})
	p.stdin.Close()
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
	}
	return p.cmd.Wait()
}

// Serve is the child side of Process: it reads a setup request and then
// requests from r, one JSON object per line, and writes responses to w.
// Requests run concurrently. It returns after an exit request or when r
// ends, with every connection closed.
func Serve(r io.Reader, w io.Writer) error {
	dec := json.NewDecoder(bufio.NewReader(r))
	var wmu sync.Mutex
	enc := json.NewEncoder(w)
	reply := func(resp Response) {
		wmu.Lock()
		defer wmu.Unlock()
		enc.Encode(resp)
	}
	var setup Request
	if err := dec.Decode(&setup); err != nil {
		return fmt.Errorf("worker: reading setup: %w", err)
	}
	if setup.Setup == nil {
		return errors.New("worker: first request is not a setup")
	}
	e, err := New(*setup.Setup)
	if err != nil {
		reply(Response{ID: setup.ID, Err: err.Error()})
		return err
	}
	reply(Response{ID: setup.ID})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		e.Close()
	}()
	for {
		var req Request
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("worker: reading request: %w", err)
		}
		if req.Op == OpExit {
			reply(Response{ID: req.ID})
			return nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			reply(e.Handle(ctx, req))
		}()
	}
}
