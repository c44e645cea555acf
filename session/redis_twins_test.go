package session

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// The Lua impossible() in luaPrelude is the twin of ImpossibleTravel: on
// both sides of every threshold (distance within GeoIP's error, the one
// minute floor, the airliner's speed) they answer alike.
func TestImpossibleTravelTwinsAgree(t *testing.T) {
	srv := redisserver.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	probe := redis.NewScript(luaPrelude + `
return impossible(tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])) and 1 or 0
`)
	t0 := time.UnixMilli(1_800_000_000_000)
	type place struct{ lat, lon float64 }
	berlin, potsdam, paris, newYork := place{52.52, 13.405}, place{52.39, 13.06}, place{48.86, 2.35}, place{40.71, -74.01}
	cases := []struct {
		from, to place
		after    time.Duration
	}{
		{berlin, potsdam, time.Second},                  // within GeoIP's error
		{berlin, paris, time.Second},                    // the one-minute floor
		{berlin, paris, 59 * time.Second},               // still the floor
		{berlin, paris, 50 * time.Minute},               // ~880 km in 50 min: over 1000 km/h
		{berlin, paris, 53 * time.Minute},               // just under 1000 km/h
		{berlin, paris, 2 * time.Hour},                  // a flight
		{berlin, newYork, 5 * time.Hour},                // too fast
		{berlin, newYork, 7 * time.Hour},                // a flight
		{berlin, berlin, 0},                             // no move
		{newYork, berlin, 6*time.Hour + 25*time.Minute}, // around the threshold
	}
	var sawTrue, sawFalse bool
	for _, c := range cases {
		t1 := t0.Add(c.after)
		want := ImpossibleTravel(c.from.lat, c.from.lon, t0, c.to.lat, c.to.lon, t1)
		got, err := probe.Run(context.Background(), client, nil,
			c.from.lat, c.from.lon, t0.UnixMilli(), c.to.lat, c.to.lon, t1.UnixMilli()).Int()
		if err != nil {
			t.Fatal(err)
		}
		if (got == 1) != want {
			t.Errorf("%v -> %v after %v: Lua %v, Go %v", c.from, c.to, c.after, got == 1, want)
		}
		sawTrue, sawFalse = sawTrue || want, sawFalse || !want
	}
	if !sawTrue || !sawFalse {
		t.Fatal("the cases do not cover both answers")
	}
}

// The constants the scripts share with Go are spelled from the Go values:
// the prelude names the validate replies as Go numbers them, and the
// script text holds no reply code as a bare number.
func TestLuaConstantsComeFromGo(t *testing.T) {
	srv := redisserver.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	probe := redis.NewScript(luaPrelude + `
return {UNKNOWN, VALID, EXPIRED, ENDED, NEEDS_OWNER, UNLISTED}
`)
	got, err := probe.Run(context.Background(), client, nil).Int64Slice()
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{validateUnknown, validateValid, validateExpired, validateEnded, validateNeedsOwner, validateUnlisted}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("reply %d: Lua %d, Go %d", i, got[i], want[i])
		}
	}
	for _, bare := range []string{"return {0", "return {1", "return {2", "return {3", "return {4", "return {5"} {
		if strings.Contains(validateSource, bare) {
			t.Errorf("validateScript returns a bare code: %q", bare)
		}
	}
}
