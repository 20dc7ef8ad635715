package auth_test

import (
	"github.com/pushd/pushd/conn/auth"
	"github.com/pushd/pushd/conn/session"
)

// *auth.Identity is what the engine stores per connection.
var _ session.Identity = (*auth.Identity)(nil)
