package topics

import (
	"testing"
	"unsafe"
)

// TestSubscriptionSize keeps a Subscription at 32 bytes (a 32-byte
// allocation class): there is one per topic per connection, so every byte
// counts in idle memory per connection (docs/benchmarks.md). Resume state
// lives in Shard.ext instead.
func TestSubscriptionSize(t *testing.T) {
	if n := unsafe.Sizeof(Subscription{}); n > 32 {
		t.Fatalf("Subscription is %d bytes, want at most 32", n)
	}
}
