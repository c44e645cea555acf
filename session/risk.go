package session

import (
	"math"
	"slices"
	"strings"
	"time"
)

// Risk flags (SPEC section 8), as X-Auth-Risk lists them.
const (
	FlagNewDevice           = "new-device"
	FlagNewCountry          = "new-country"
	FlagIPChanged           = "ip-changed"
	FlagCountryChanged      = "country-changed"
	FlagImpossibleTravel    = "impossible-travel"
	FlagConcurrentCountries = "concurrent-countries"
)

// Impossible travel: faster than an airliner between two located
// sightings. Distances within GeoIP's own error (city centroids of nearby
// networks) never count, and the elapsed time is at least a minute, so two
// requests a second apart from neighbouring cities are not "travel".
const (
	MaxTravelKmh      = 1000.0
	MinTravelKm       = 100.0
	minTravelInterval = time.Minute
	earthRadiusKm     = 6371.0
)

// Sighting is where a session was just seen.
type Sighting struct {
	IP       string
	Country  string
	City     string
	Lat, Lon float64
	HasCoord bool
}

// DistanceKm is the great-circle distance between two points.
func DistanceKm(lat1, lon1, lat2, lon2 float64) float64 {
	rad := math.Pi / 180
	dlat, dlon := (lat2-lat1)*rad, (lon2-lon1)*rad
	a := math.Pow(math.Sin(dlat/2), 2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Pow(math.Sin(dlon/2), 2)
	return 2 * earthRadiusKm * math.Asin(math.Min(1, math.Sqrt(a)))
}

// ImpossibleTravel reports whether going from the first sighting to the
// second would take more than MaxTravelKmh. Lua twin: impossible in
// luaPrelude (redis_scripts.go); TestImpossibleTravelTwinsAgree.
func ImpossibleTravel(lat1, lon1 float64, t1 time.Time, lat2, lon2 float64, t2 time.Time) bool {
	d := DistanceKm(lat1, lon1, lat2, lon2)
	if d <= MinTravelKm {
		return false
	}
	elapsed := t2.Sub(t1)
	if elapsed < minTravelInterval {
		elapsed = minTravelInterval
	}
	return d/elapsed.Hours() > MaxTravelKmh
}

// AddFlag adds flag to a comma-separated list once.
func AddFlag(list, flag string) string {
	if HasFlag(list, flag) {
		return list
	}
	if list == "" {
		return flag
	}
	return list + "," + flag
}

// HasFlag reports whether a comma-separated list holds flag.
func HasFlag(list, flag string) bool {
	return slices.Contains(strings.Split(list, ","), flag)
}

// history is what the stores remember per user for risk signals, kept for
// retention: device ids and countries with when they were last seen, and
// the last located sighting.
type history struct {
	devices   map[string]time.Time
	countries map[string]time.Time
	lastLoc   *located
}

type located struct {
	lat, lon float64
	at       time.Time
}

// signInRisk computes the flags of a new session s from the user's
// history and the countries of the user's other active sessions. The
// first sign-in within retention is the baseline: no new-device, no
// new-country. Lua twin: the risk part of createScript (redis_scripts.go).
func signInRisk(h *history, s *Session, otherCountries []string, now time.Time, retention time.Duration) string {
	since := now.Add(-retention)
	baseline := true
	knownDevice, knownCountry := false, false
	for id, at := range h.devices {
		if !at.Before(since) {
			baseline = false
			knownDevice = knownDevice || s.DeviceID != "" && sameDevice(id, s.DeviceID)
		}
	}
	for c, at := range h.countries {
		if !at.Before(since) {
			baseline = false
			knownCountry = knownCountry || c == s.Country
		}
	}
	var flags string
	if !baseline && s.DeviceID != "" && !knownDevice {
		flags = AddFlag(flags, FlagNewDevice)
	}
	if !baseline && s.Country != "" && !knownCountry {
		flags = AddFlag(flags, FlagNewCountry)
	}
	if s.HasCoord && h.lastLoc != nil && !h.lastLoc.at.Before(since) &&
		ImpossibleTravel(h.lastLoc.lat, h.lastLoc.lon, h.lastLoc.at, s.Lat, s.Lon, now) {
		flags = AddFlag(flags, FlagImpossibleTravel)
	}
	if s.Country != "" {
		for _, c := range otherCountries {
			if c != "" && c != s.Country {
				flags = AddFlag(flags, FlagConcurrentCountries)
				break
			}
		}
	}
	return flags
}

// remember records a sighting in the history. Lua twin: sightScript and
// createScript (record_location, the d:/c: members) in redis_scripts.go.
func (h *history) remember(deviceID string, sg Sighting, now time.Time) {
	if deviceID != "" {
		h.devices[deviceID] = now
	}
	if sg.Country != "" {
		h.countries[sg.Country] = now
	}
	if sg.HasCoord {
		h.lastLoc = &located{sg.Lat, sg.Lon, now}
	}
}

// RiskEvents are the "risk" audit events for flags raised on s.
func RiskEvents(s *Session, flags string, at time.Time) []Event {
	var out []Event
	for _, f := range strings.Split(flags, ",") {
		if f != "" {
			e := eventFor(s, EventRisk, at)
			e.Reason = f
			out = append(out, e)
		}
	}
	return out
}
