package geo_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/geo"
	"github.com/sessionauth/caddy-sessionauth/integration/geotest"
)

func TestLookup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "City.mmdb")
	geotest.Write(t, path, geotest.Berlin, geotest.NewYork, geotest.Paris)
	db, err := geo.Open(path, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cases := map[string]string{
		"198.51.100.7":          "DE/Berlin",
		"::ffff:198.51.100.7":   "DE/Berlin",
		"203.0.113.200":         "US/New York",
		"2001:db8:1::42":        "FR/Paris",
		"2001:db8:2::1":         "/",
		"192.0.2.1":             "/",
		"10.1.2.3":              "/",
		"192.168.1.1":           "/",
		"127.0.0.1":             "/",
		"::1":                   "/",
		"fe80::1%eth0":          "/",
		"169.254.0.1":           "/",
		"0.0.0.0":               "/",
		"not-an-ip":             "/",
		"999.1.1.1":             "/",
		"":                      "/",
		"198.51.100.7:8080":     "/",
		strings.Repeat("1", 99): "/",
	}
	for ip, want := range cases {
		loc := db.Lookup(ip)
		if got := loc.Country + "/" + loc.City; got != want {
			t.Errorf("Lookup(%q) = %q, want %q", ip, got, want)
		}
	}
	if loc := db.Lookup("198.51.100.7"); !loc.HasCoord || loc.Lat != 52.52 || loc.Lon != 13.405 {
		t.Errorf("coordinates: %+v", loc)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := geo.Open(filepath.Join(dir, "missing.mmdb"), 0, nil); err == nil || !strings.Contains(err.Error(), "loading geoip database") {
		t.Errorf("missing file: %v", err)
	}
	garbage := filepath.Join(dir, "garbage.mmdb")
	os.WriteFile(garbage, []byte("this is not a database"), 0o644)
	if _, err := geo.Open(garbage, 0, nil); err == nil {
		t.Error("garbage accepted")
	}
}

// A replaced file is picked up; a bad replacement keeps the old database,
// and lookups never fail in between.
func TestReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "City.mmdb")
	geotest.Write(t, path, geotest.Berlin)
	db, err := geo.Open(path, 10*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stop := make(chan struct{})
	failures := make(chan string, 1)
	go func() { // lookups all along
		for {
			select {
			case <-stop:
				close(failures)
				return
			default:
			}
			if loc := db.Lookup("198.51.100.1"); loc.Country == "" {
				select {
				case failures <- "a lookup found nothing during a reload":
				default:
				}
			}
		}
	}()

	moved := geotest.Berlin
	moved.City = "Potsdam"
	geotest.Write(t, path, moved, geotest.NewYork)
	waitFor(t, func() bool { return db.Lookup("198.51.100.1").City == "Potsdam" })
	if db.Lookup("203.0.113.1").Country != "US" {
		t.Error("new network missing after reload")
	}

	geotest.Replace(t, path, []byte("garbage garbage garbage"))
	if err := db.Reload(); err == nil {
		t.Error("a garbage replacement was accepted")
	}
	if db.Lookup("198.51.100.1").City != "Potsdam" {
		t.Error("a bad replacement lost the database in use")
	}
	geotest.Write(t, path, geotest.Berlin)
	waitFor(t, func() bool { return db.Lookup("198.51.100.1").City == "Berlin" })
	close(stop)
	for f := range failures {
		t.Error(f)
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
