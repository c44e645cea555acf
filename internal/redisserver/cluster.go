package redisserver

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of real redis-server processes, one master
// per node, the 16384 slots split evenly.
type Cluster struct {
	Nodes []*Server
}

// Addrs lists the nodes' addresses.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr
	}
	return out
}

// StartCluster starts n masters and joins them into a cluster.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	t.Log("used: Redis Cluster") // for make test's summary
	c := &Cluster{}
	for i := 0; i < n; i++ {
		c.Nodes = append(c.Nodes, Start(t, "--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	per := 16384 / n
	for i, node := range c.Nodes {
		cl := redis.NewClient(&redis.Options{Addr: node.Addr})
		first, last := i*per, (i+1)*per-1
		if i == n-1 {
			last = 16383
		}
		if err := cl.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", first, last).Err(); err != nil {
			t.Fatalf("assigning slots: %v", err)
		}
		if i > 0 {
			if err := cl.Do(ctx, "CLUSTER", "MEET", "127.0.0.1", c.Nodes[0].Port).Err(); err != nil {
				t.Fatalf("joining the cluster: %v", err)
			}
		}
		cl.Close()
	}
	for _, node := range c.Nodes {
		cl := redis.NewClient(&redis.Options{Addr: node.Addr})
		for {
			info, err := cl.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", n)) {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("cluster did not form: %v %s", err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
		cl.Close()
	}
	return c
}

// MigrateSlot moves one slot to node `to`, one key at a time with a pause
// between keys, so that clients meet the slot half-moved (ASK) and then
// moved (MOVED), as during a live resharding.
func (c *Cluster) MigrateSlot(t testing.TB, slot, to int, pause time.Duration) {
	t.Helper()
	ctx := context.Background()
	clients := make([]*redis.Client, len(c.Nodes))
	ids := make([]string, len(c.Nodes))
	from := -1
	for i, n := range c.Nodes {
		clients[i] = redis.NewClient(&redis.Options{Addr: n.Addr})
		defer clients[i].Close()
		id, err := clients[i].Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
		if n, err := clients[i].Do(ctx, "CLUSTER", "COUNTKEYSINSLOT", slot).Int(); err == nil && n > 0 {
			from = i
		}
	}
	if from < 0 || from == to {
		t.Fatalf("slot %d: no keys, or already on node %d", slot, to)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(clients[to].Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[from]).Err())
	must(clients[from].Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[to]).Err())
	for {
		keys, err := clients[from].Do(ctx, "CLUSTER", "GETKEYSINSLOT", slot, 1).StringSlice()
		must(err)
		if len(keys) == 0 {
			break
		}
		must(clients[from].Do(ctx, "MIGRATE", "127.0.0.1", c.Nodes[to].Port, keys[0], 0, 5000).Err())
		time.Sleep(pause)
	}
	for i := range c.Nodes {
		must(clients[i].Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", ids[to]).Err())
	}
}
