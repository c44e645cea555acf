package geo

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oschwald/geoip2-golang"
	"go.uber.org/zap"
)

// Location is where an IP address is, as far as the database knows.
type Location struct {
	Country  string // ISO 3166-1 alpha-2
	City     string // English name
	Lat, Lon float64
	HasCoord bool
}

// DB is a GeoIP2 or GeoLite2 City database that follows its file: when the
// file is replaced (geoipupdate writes a new one and renames it into
// place), the new one is loaded and swapped in without a window where
// lookups fail; a bad replacement keeps the old one and logs.
//
// The file is read into memory rather than mapped, so a swapped-out
// database is simply collected: a lookup in flight never touches
// unmapped memory.
type DB struct {
	path   string
	logger *zap.Logger

	cur atomic.Pointer[geoip2.Reader]

	mu      sync.Mutex // serialises reloads
	modTime time.Time
	size    int64

	stop chan struct{}
	once sync.Once
}

// Open loads the City database at path and, when every > 0, checks the
// file for a replacement that often until Close.
func Open(path string, every time.Duration, logger *zap.Logger) (*DB, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	db := &DB{path: path, logger: logger, stop: make(chan struct{})}
	if _, err := db.load(); err != nil {
		return nil, err
	}
	if every > 0 {
		go db.watch(every)
	}
	return db, nil
}

// load reads the file when it differs from the loaded one; it reports
// whether it swapped.
func (db *DB) load() (bool, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	fi, err := os.Stat(db.path)
	if err != nil {
		return false, fmt.Errorf("loading geoip database: %w", err)
	}
	if db.cur.Load() != nil && fi.ModTime().Equal(db.modTime) && fi.Size() == db.size {
		return false, nil
	}
	data, err := os.ReadFile(db.path)
	if err != nil {
		return false, fmt.Errorf("loading geoip database: %w", err)
	}
	r, err := geoip2.FromBytes(data)
	if err != nil {
		return false, fmt.Errorf("loading geoip database %s: %w", db.path, err)
	}
	if t := r.Metadata().DatabaseType; !strings.Contains(t, "City") {
		return false, fmt.Errorf("loading geoip database %s: type %q is not a City database", db.path, t)
	}
	db.cur.Store(r)
	db.modTime, db.size = fi.ModTime(), fi.Size()
	return true, nil
}

// Reload checks the file now; a failure keeps the database in use.
func (db *DB) Reload() error {
	swapped, err := db.load()
	if err != nil {
		db.logger.Error("geoip database replacement rejected; keeping the one in use", zap.Error(err))
		return err
	}
	if swapped {
		db.logger.Info("geoip database reloaded", zap.String("path", db.path))
	}
	return nil
}

func (db *DB) watch(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = db.Reload()
		case <-db.stop:
			return
		}
	}
}

// Lookup locates ip. Private, loopback, link-local and unparseable
// addresses, and addresses the database does not know, have no location;
// that is never an error.
func (db *DB) Lookup(ip string) Location {
	if db == nil {
		return Location{}
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return Location{}
	}
	addr = addr.Unmap().WithZone("")
	if !addr.IsGlobalUnicast() || addr.IsPrivate() {
		return Location{}
	}
	rec, err := db.cur.Load().City(net.IP(addr.AsSlice()))
	if err != nil || rec == nil {
		return Location{}
	}
	loc := Location{Country: rec.Country.IsoCode, City: rec.City.Names["en"]}
	if rec.Location.Latitude != 0 || rec.Location.Longitude != 0 {
		loc.Lat, loc.Lon, loc.HasCoord = rec.Location.Latitude, rec.Location.Longitude, true
	}
	return loc
}

// Info is what the database in use says of itself.
type Info struct {
	Path  string
	Type  string    // e.g. GeoLite2-City
	Built time.Time // when MaxMind built it
}

// Info describes the database in use (the last good one the file held).
func (db *DB) Info() Info {
	md := db.cur.Load().Metadata()
	return Info{Path: db.path, Type: md.DatabaseType, Built: time.Unix(int64(md.BuildEpoch), 0).UTC()}
}

// Close stops watching the file.
func (db *DB) Close() error {
	if db == nil {
		return errors.New("nil geoip database")
	}
	db.once.Do(func() { close(db.stop) })
	return nil
}
