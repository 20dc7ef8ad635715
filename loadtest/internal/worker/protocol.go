package worker

import "time"

// Setup configures a worker. The coordinator sends it once, first.
type Setup struct {
	// Index numbers the worker among its siblings (for messages only).
	Index int `json:"index"`
	// Target is the server's ip:port and Host the Host header.
	Target string `json:"target"`
	Host   string `json:"host"`
	// Path is the request-target template ({{topic}}, {{id}}), for example
	// "/ws?topics={{topic}}".
	Path string `json:"path"`
	// SubscribeFrame, if not empty, is a template for a text message sent
	// right after the upgrade.
	SubscribeFrame string `json:"subscribe_frame,omitempty"`
	// Topics are the topic names; connection id i uses Topics[i%len].
	Topics []string `json:"topics"`
	// Sources are local IP addresses to spread connections over.
	Sources []string `json:"sources,omitempty"`
	// ExtraHeaders are complete header lines sent with each upgrade.
	ExtraHeaders string `json:"extra_headers,omitempty"`
	// Loops is the number of client event loops (default 1).
	Loops int `json:"loops"`
	// MaxInflight bounds dials in progress per loop.
	MaxInflight      int           `json:"max_inflight"`
	HandshakeTimeout time.Duration `json:"handshake_timeout"`
	CloseTimeout     time.Duration `json:"close_timeout"`
	ReadBufferSize   int           `json:"read_buffer_size"`
}

// Ops a worker understands.
const (
	OpOpen   = "open"   // dial Open.Count connections
	OpChurn  = "churn"  // dial at a rate, close each after a lifetime
	OpStorm  = "storm"  // drop Storm.Count open connections and redial them at once
	OpClose  = "close"  // close every connection
	OpStats  = "stats"  // report Stats
	OpCancel = "cancel" // cancel the request numbered Cancel
	OpExit   = "exit"   // close everything and exit (process workers)
)

// Request is one call from the coordinator to a worker.
type Request struct {
	ID     uint64     `json:"id"`
	Op     string     `json:"op"`
	Setup  *Setup     `json:"setup,omitempty"`
	Open   *OpenArgs  `json:"open,omitempty"`
	Churn  *ChurnArgs `json:"churn,omitempty"`
	Storm  *StormArgs `json:"storm,omitempty"`
	Close  *CloseArgs `json:"close,omitempty"`
	Full   bool       `json:"full,omitempty"` // stats: include histograms and memory
	Cancel uint64     `json:"cancel,omitempty"`
}

// OpenArgs asks for connections with ids First … First+Count-1, dialed at
// Rate per second (0: as fast as MaxInflight allows), counted in Phase.
// The call returns when every dial has opened or failed.
type OpenArgs struct {
	First int     `json:"first"`
	Count int     `json:"count"`
	Rate  float64 `json:"rate"`
	Phase int     `json:"phase"`
}

// ChurnArgs asks for Rate new connections per second for Duration, with
// ids from First, each closed with a closing handshake Lifetime after it
// opened. The call returns when all of them have closed.
type ChurnArgs struct {
	First    int           `json:"first"`
	Rate     float64       `json:"rate"`
	Duration time.Duration `json:"duration"`
	Lifetime time.Duration `json:"lifetime"`
	Phase    int           `json:"phase"`
}

// StormArgs asks the worker to drop Count of its open connections at once
// and redial them immediately, counted in Phase. The call returns when the
// redials have opened or failed; Response.Start is when the drop began.
type StormArgs struct {
	Count int `json:"count"`
	Phase int `json:"phase"`
}

// CloseArgs asks the worker to close every connection, with a closing
// handshake if Graceful, else by dropping the sockets.
type CloseArgs struct {
	Graceful bool `json:"graceful"`
}

// Response answers the Request with the same ID.
type Response struct {
	ID    uint64 `json:"id"`
	Err   string `json:"err,omitempty"`
	Stats *Stats `json:"stats,omitempty"`
	// Start is a wall-clock Unix nanosecond time an op reports (storm).
	Start int64 `json:"start,omitempty"`
}
