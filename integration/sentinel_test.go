package integration

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

func replOffset(addr string) (int64, error) {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	info, err := c.Info(context.Background(), "replication").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "master_repl_offset:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, nil
}

// Through Sentinel, under load: the master stops; during the failover
// requests get 503, never anonymous access; after it the same session
// works again, without a restart.
func TestSentinelFailover(t *testing.T) {
	s := redisserver.StartSentinels(t, 3)
	store := "store redis {\n addresses " + strings.Join(s.SentinelAddrs(), " ") + "\n master mymaster\n read_timeout 300ms\n dial_timeout 300ms\n }"
	up := newUpstream(t)
	g := loadCaddy(t, site(store), up)
	c := newClient(t, g)
	c.signIn("sam")
	if res := c.do("GET", "/"); res.StatusCode != 200 || res.headers["X-Auth-User"] != "sam" {
		t.Fatalf("before the failover: %d", res.StatusCode)
	}
	s.WaitReplicated(t, replOffset)

	// Load throughout the failover: every answer is the identity or 503.
	stopLoad := underLoad(c, "sam")
	defer func() {
		if _, _, bad := stopLoad(); bad != nil {
			t.Fatalf("under load during the failover: %v (never anonymous, never a lost session)", bad)
		}
	}()

	s.Master.Stop()
	deadline := time.Now().Add(45 * time.Second)
	saw503 := false
	for {
		res := c.do("GET", "/")
		switch {
		case res.StatusCode == 503:
			saw503 = true
		case res.StatusCode == 200 && res.headers["X-Auth-User"] == "sam":
			if !saw503 {
				t.Log("the failover went unnoticed by requests")
			}
			if res := newClient(t, g).do("POST", "/login?user=sue&status=303"); res.StatusCode != 303 {
				t.Fatalf("sign-in after the failover: %d", res.StatusCode)
			}
			return
		default:
			t.Fatalf("during the failover: %d %v (never anonymous, never a lost session)", res.StatusCode, res.headers)
		}
		if time.Now().After(deadline) {
			t.Fatal("no recovery within 45 s of the master stopping")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
