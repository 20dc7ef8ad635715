package auth_test

import (
	"github.com/pushd/pushd/conn"
	"github.com/pushd/pushd/conn/auth"
)

// *auth.Identity is what the engine stores per connection.
var _ conn.Identity = (*auth.Identity)(nil)
