package redisserver

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Sentinels is a master, a replica of it, and sentinels watching them
// under the name "mymaster", all real processes on free ports.
type Sentinels struct {
	Master, Replica *Server
	Sentinels       []*Server
}

// SentinelAddrs lists the sentinels' addresses.
func (s *Sentinels) SentinelAddrs() []string {
	out := make([]string, len(s.Sentinels))
	for i, n := range s.Sentinels {
		out[i] = n.Addr
	}
	return out
}

// StartSentinels starts the master, the replica and n sentinels (quorum 2)
// that fail over after a second of silence.
func StartSentinels(t testing.TB, n int) *Sentinels {
	t.Helper()
	t.Log("used: Redis Sentinel") // for make test's summary
	s := &Sentinels{Master: Start(t)}
	s.Replica = Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(s.Master.Port))
	bin := Binary(t)
	for i := 0; i < n; i++ {
		sv := &Server{Port: FreePort(t), Dir: t.TempDir(), t: t}
		sv.Addr = "127.0.0.1:" + strconv.Itoa(sv.Port)
		conf := filepath.Join(sv.Dir, "sentinel.conf")
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n"+
			"sentinel monitor mymaster 127.0.0.1 %d 2\n"+
			"sentinel down-after-milliseconds mymaster 1000\n"+
			"sentinel failover-timeout mymaster 5000\n"+
			"sentinel parallel-syncs mymaster 1\n",
			sv.Port, sv.Dir, filepath.Join(sv.Dir, "redis.log"), s.Master.Port)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		sv.args = []string{conf, "--sentinel"}
		sv.start(bin)
		t.Cleanup(sv.Stop)
		s.Sentinels = append(s.Sentinels, sv)
	}
	return s
}

// WaitReplicated waits until the replica has everything the master wrote.
func (s *Sentinels) WaitReplicated(t testing.TB, offset func(addr string) (int64, error)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		m, err1 := offset(s.Master.Addr)
		r, err2 := offset(s.Replica.Addr)
		if err1 == nil && err2 == nil && m > 0 && m == r {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the replica did not catch up")
}
