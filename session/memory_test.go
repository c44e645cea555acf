package session_test

import (
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

func TestMemoryConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) session.Store {
		m := session.NewMemory(now, 0)
		t.Cleanup(func() { m.Close() })
		return m
	}, storetest.Hooks{DropIndex: func(_ *testing.T, st session.Store, user string) {
		session.DropUserIndex(st.(*session.Memory), user)
	}})
}

func TestMemoryStashExpires(t *testing.T) {
	c := storetest.NewClock()
	m := session.NewMemory(c.Now, 0)
	t.Cleanup(func() { m.Close() })
	storetest.StashExpires(t, m, c)
}
