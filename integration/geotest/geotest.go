// Package geotest writes small GeoIP2 City databases for tests, so that no
// test needs a real MaxMind file.
package geotest

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Place is one network's location.
type Place struct {
	Network  string // CIDR
	Country  string
	City     string
	Lat, Lon float64
}

// Places used across the tests, in the documentation ranges.
var (
	Berlin  = Place{"198.51.100.0/24", "DE", "Berlin", 52.52, 13.405}
	Munich  = Place{"192.0.2.0/24", "DE", "Munich", 48.137, 11.575}
	NewYork = Place{"203.0.113.0/24", "US", "New York", 40.7128, -74.006}
	Paris   = Place{"2001:db8:1::/48", "FR", "Paris", 48.8566, 2.3522}
)

// Write builds a City database of places at path (written to a temporary
// file and renamed into place, as geoipupdate does).
func Write(t testing.TB, path string, places ...Place) {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            "GeoLite2-City",
		RecordSize:              28,
		IncludeReservedNetworks: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range places {
		_, network, err := net.ParseCIDR(p.Network)
		if err != nil {
			t.Fatal(err)
		}
		rec := mmdbtype.Map{
			"country":  mmdbtype.Map{"iso_code": mmdbtype.String(p.Country), "names": mmdbtype.Map{"en": mmdbtype.String(p.Country)}},
			"city":     mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(p.City)}},
			"location": mmdbtype.Map{"latitude": mmdbtype.Float64(p.Lat), "longitude": mmdbtype.Float64(p.Lon)},
		}
		if err := tree.Insert(network, rec); err != nil {
			t.Fatal(err)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".geotest-*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(tmp); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		t.Fatal(err)
	}
}

// Replace puts raw bytes in place of the database, for bad replacements.
func Replace(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
