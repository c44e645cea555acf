package session_test

import (
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

func TestFileAccountsConformance(t *testing.T) {
	storetest.RunAccounts(t, func(t *testing.T, now func() time.Time) session.Store {
		return openFile(t, now, session.FileOptions{})
	})
}
