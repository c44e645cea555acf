package integration

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sessionauth/caddy-sessionauth/integration/geotest"
	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

const (
	iPhoneChrome = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1"
	windowsEdge  = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0"
	berlinIP     = "198.51.100.7"
	munichIP     = "192.0.2.20"
	newYorkIP    = "203.0.113.5"
	parisIP      = "2001:db8:1::5"
)

func geoDB(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "GeoLite2-City.mmdb")
	geotest.Write(t, path, geotest.Berlin, geotest.Munich, geotest.NewYork, geotest.Paris)
	return path
}

// geoClient signs in and sends requests from a given address (through the
// trusted proxy on loopback) with a given user agent; it keeps the device
// cookie like a browser.
type geoClient struct {
	*client
	ua     string
	device string
}

func (c *geoClient) from(ip, method, target string, header ...string) *response {
	c.t.Helper()
	header = append(header, "X-Forwarded-For", ip, "User-Agent", c.ua)
	if c.device != "" {
		header = append(header, "Cookie", "session_device="+c.device)
	}
	res := c.do(method, target, header...)
	if ck := sessionCookie(res, "session_device"); ck != nil {
		c.device = ck.Value
	}
	return res
}

func (c *geoClient) signInFrom(ip, user string) *response {
	c.t.Helper()
	res := c.from(ip, "POST", "/login?"+url.Values{"user": {user}, "status": {"303"}}.Encode())
	ck := sessionCookie(res, "session")
	if res.StatusCode != 303 || ck == nil {
		c.t.Fatalf("sign-in from %s: %d", ip, res.StatusCode)
	}
	c.cookie = ck.Value
	return res
}

func newGeoClient(t *testing.T, g *gateway, ua string) *geoClient {
	return &geoClient{client: newClient(t, g), ua: ua}
}

func TestDevicesLocationsAndRisk(t *testing.T) {
	stores(t, func(t *testing.T, store string, _ *redisserver.Server) {
		g := loadCaddy(t, site(store+"\ngeoip "+geoDB(t)+"\nmax_sessions 0"), newUpstream(t))
		user := "geo-" + randomID()

		phone := newGeoClient(t, g, iPhoneChrome)
		res := phone.signInFrom(berlinIP, user)
		dc := sessionCookie(res, "session_device")
		if dc == nil || !dc.HttpOnly || dc.MaxAge < 300*24*3600 || len(dc.Value) != 32 {
			t.Fatalf("device cookie: %+v", dc)
		}
		h := phone.from(berlinIP, "GET", "/").headers
		for name, want := range map[string]string{
			"X-Auth-Device": "iPhone", "X-Auth-Device-Type": "mobile", "X-Auth-Browser": "Chrome", "X-Auth-Os": "iOS",
			"X-Auth-Country": "DE", "X-Auth-City": "Berlin", "X-Auth-Ip": berlinIP, "X-Auth-Ip-Changed": "false",
		} {
			if h[name] != want {
				t.Errorf("%s = %q, want %q", name, h[name], want)
			}
		}
		if _, ok := h["X-Auth-Risk"]; ok {
			t.Errorf("baseline sign-in has risk %q", h["X-Auth-Risk"])
		}

		// Same country, other city, seconds later: 504 km is no walk.
		h = phone.from(munichIP, "GET", "/").headers
		if h["X-Auth-City"] != "Munich" || h["X-Auth-Ip-Changed"] != "true" || h["X-Auth-Risk"] != "impossible-travel,ip-changed" {
			t.Errorf("Munich: %v", h)
		}
		// Another country: country-changed as well.
		h = phone.from(newYorkIP, "GET", "/").headers
		if h["X-Auth-Country"] != "US" || h["X-Auth-Login-Ip"] != berlinIP ||
			h["X-Auth-Risk"] != "impossible-travel,ip-changed,country-changed" {
			t.Errorf("New York: %v", h)
		}
		// Back home: ip-changed and country-changed are computed anew,
		// impossible-travel stays with the session.
		if h = phone.from(berlinIP, "GET", "/").headers; h["X-Auth-Risk"] != "impossible-travel" || h["X-Auth-Ip-Changed"] != "false" {
			t.Errorf("back in Berlin: %v", h)
		}

		// A browser the user never used: new-device.
		pc := newGeoClient(t, g, windowsEdge)
		pc.signInFrom(berlinIP, user)
		h = pc.from(berlinIP, "GET", "/").headers
		if h["X-Auth-Device"] != "Windows PC" || h["X-Auth-Browser"] != "Edge" || h["X-Auth-Risk"] != "new-device" {
			t.Errorf("new device: %v", h)
		}
		// The phone signs out and in again: its device cookie survives, it
		// is known.
		phone.from(berlinIP, "POST", "/.auth/logout")
		phone.signInFrom(berlinIP, user)
		if h = phone.from(berlinIP, "GET", "/").headers; h["X-Auth-Risk"] != "" {
			t.Errorf("known device after sign-out: %v", h)
		}
		// A country seen before (New York, above) is not new; France is,
		// while sessions are active in Germany.
		phone.signInFrom(newYorkIP, user)
		if h = phone.from(newYorkIP, "GET", "/").headers; h["X-Auth-Risk"] != "impossible-travel,concurrent-countries" {
			t.Errorf("known country: %v", h)
		}
		phone.signInFrom(parisIP, user)
		if h = phone.from(parisIP, "GET", "/").headers; h["X-Auth-Risk"] != "new-country,impossible-travel,concurrent-countries" || h["X-Auth-Country"] != "FR" {
			t.Errorf("new country: %v", h)
		}

		// The audit trail has the moves.
		code, body := g.adminDo("GET", "/session-auth/users/"+user+"/events", "")
		var evs []struct{ Type, Reason, Country string }
		if code != 200 || json.Unmarshal([]byte(body), &evs) != nil {
			t.Fatalf("events: %d %s", code, body)
		}
		var got []string
		for _, e := range evs {
			got = append(got, e.Type+":"+e.Reason+":"+e.Country)
		}
		for _, want := range []string{"ip_change::DE", "country_change::US", "risk:impossible-travel:DE", "risk:new-device:DE", "risk:new-country:FR", "risk:concurrent-countries:US"} {
			if !strings.Contains(strings.Join(got, " "), want) {
				t.Errorf("no %s event in %v", want, got)
			}
		}
		// The admin list shows device and place.
		_, body = g.adminDo("GET", "/session-auth/users/"+user+"/sessions", "")
		if !strings.Contains(body, `"device_name":"Windows PC"`) || !strings.Contains(body, `"city":"New York"`) {
			t.Errorf("admin list lacks device or place: %s", body)
		}
	})
}

func TestIPAndCountryPolicies(t *testing.T) {
	stores(t, func(t *testing.T, store string, _ *redisserver.Server) {
		db := geoDB(t)
		g := loadCaddy(t, site(store+"\ngeoip "+db+"\nip_change deny"), newUpstream(t))
		c := newGeoClient(t, g, windowsEdge)
		c.signInFrom(berlinIP, "pol-"+randomID())
		if res := c.from(berlinIP, "GET", "/"); res.StatusCode != 200 {
			t.Fatalf("same IP: %d", res.StatusCode)
		}
		res := c.from(munichIP, "GET", "/")
		if res.StatusCode != 401 {
			t.Fatalf("ip_change deny: %d", res.StatusCode)
		}
		id := strings.SplitN(c.cookie, ".", 2)[0]
		if _, body := g.adminDo("GET", "/session-auth/sessions/"+id, ""); !strings.Contains(body, `"end_reason":"ip_change"`) {
			t.Fatalf("ended session: %s", body)
		}
		if res := c.from(berlinIP, "GET", "/"); res.StatusCode != 401 {
			t.Fatalf("back at the first IP: %d", res.StatusCode)
		}

		g = loadCaddy(t, site(store+"\ngeoip "+db+"\ncountry_change deny"), newUpstream(t))
		c = newGeoClient(t, g, windowsEdge)
		c.signInFrom(berlinIP, "pol-"+randomID())
		if res := c.from(munichIP, "GET", "/"); res.StatusCode != 200 || res.headers["X-Auth-Risk"] != "impossible-travel,ip-changed" {
			t.Fatalf("country_change deny, same country: %d %v", res.StatusCode, res.headers)
		}
		if res := c.from(newYorkIP, "GET", "/"); res.StatusCode != 401 {
			t.Fatalf("country_change deny, other country: %d", res.StatusCode)
		}
		id = strings.SplitN(c.cookie, ".", 2)[0]
		if _, body := g.adminDo("GET", "/session-auth/sessions/"+id, ""); !strings.Contains(body, `"end_reason":"country_change"`) {
			t.Fatalf("ended session: %s", body)
		}

		g = loadCaddy(t, site(store+"\ngeoip "+db+"\nip_change allow\ncountry_change allow"), newUpstream(t))
		c = newGeoClient(t, g, windowsEdge)
		c.signInFrom(berlinIP, "pol-"+randomID())
		if res := c.from(newYorkIP, "GET", "/"); res.StatusCode != 200 || res.headers["X-Auth-Risk"] != "impossible-travel" || res.headers["X-Auth-Ip-Changed"] != "true" {
			t.Fatalf("allow: %d %v", res.StatusCode, res.headers)
		}
	})
}

// The database file is replaced under a running gateway (as geoipupdate
// does): new lookups use the new one; garbage keeps the old one.
func TestGeoIPReloadUnderCaddy(t *testing.T) {
	db := geoDB(t)
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	// Caddy's log goes to a file the test reads: a refused replacement is
	// waited for there, not for a check interval by the clock.
	text := strings.Replace(site("store memory\ngeoip "+db+"\nmax_sessions 0"), "persist_config off\n",
		"persist_config off\n\tlog {\n\t\toutput file "+logFile+"\n\t\tlevel ERROR\n\t}\n", 1)
	g := loadCaddy(t, text, newUpstream(t))
	user := "reload-" + randomID()
	city := func() string {
		c := newGeoClient(t, g, windowsEdge)
		c.signInFrom(berlinIP, user)
		return c.from(berlinIP, "GET", "/").headers["X-Auth-City"]
	}
	if got := city(); got != "Berlin" {
		t.Fatalf("before: %q", got)
	}
	moved := geotest.Berlin
	moved.City = "Potsdam"
	geotest.Write(t, db, moved, geotest.NewYork)
	waitUntil(t, 10*time.Second, func() bool { return city() == "Potsdam" })
	geotest.Replace(t, db, []byte("not a database"))
	waitUntil(t, 10*time.Second, func() bool {
		b, _ := os.ReadFile(logFile)
		return strings.Contains(string(b), "geoip database replacement rejected")
	})
	if got := city(); got != "Potsdam" {
		t.Fatalf("after a garbage replacement: %q", got)
	}
}

func waitUntil(t *testing.T, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not reached within %v", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestGeoBadInput(t *testing.T) {
	db := geoDB(t)
	g := loadCaddy(t, site("store memory\ngeoip "+db), newUpstream(t))
	for name, ua := range map[string]string{
		"12 KB":        "Mozilla/5.0 (Windows NT 10.0) " + strings.Repeat("x", 12<<10),
		"tab":          "Mozilla/5.0\t(iPhone)",
		"invalid utf8": "Mozilla/5.0 (Macintosh) \xff\xfe Safari/605.1.15 Version/18",
	} {
		c := newGeoClient(t, g, ua)
		c.signInFrom(berlinIP, "bad-"+randomID())
		res := c.from(berlinIP, "GET", "/.auth/me")
		var me struct {
			Session struct {
				UserAgent string `json:"user_agent"`
			} `json:"session"`
		}
		if res.StatusCode != 200 || json.Unmarshal([]byte(res.body), &me) != nil {
			t.Fatalf("%s: %d %s", name, res.StatusCode, res.body)
		}
		if len(me.Session.UserAgent) > 1024 || strings.ContainsRune(me.Session.UserAgent, '\t') || !utf8.ValidString(me.Session.UserAgent) {
			t.Errorf("%s: stored user agent %q (%d bytes)", name, me.Session.UserAgent[:min(40, len(me.Session.UserAgent))], len(me.Session.UserAgent))
		}
	}
	// 100 KB of user agent: Caddy refuses the request (431), the session
	// is untouched.
	c := newGeoClient(t, g, windowsEdge)
	c.signInFrom(berlinIP, "big-"+randomID())
	c.ua = "Mozilla/5.0 " + strings.Repeat("y", 100<<10)
	if res := c.from(berlinIP, "GET", "/"); res.StatusCode != 431 {
		t.Errorf("100 KB user agent: %d", res.StatusCode)
	}
	c.ua = windowsEdge
	if res := c.from(berlinIP, "GET", "/"); res.StatusCode != 200 {
		t.Errorf("session after a 100 KB user agent: %d", res.StatusCode)
	}

	// IPv6 and IPv4-mapped IPv6 locate; malformed forwarded addresses fall
	// back to the peer.
	c = newGeoClient(t, g, windowsEdge)
	c.signInFrom("2001:db8:1::5", "v6-"+randomID())
	if h := c.from("2001:db8:1::5", "GET", "/").headers; h["X-Auth-Country"] != "FR" || h["X-Auth-Ip"] != "2001:db8:1::5" {
		t.Errorf("IPv6: %v", h)
	}
	if h := c.from("::ffff:"+berlinIP, "GET", "/").headers; h["X-Auth-Ip"] != berlinIP || h["X-Auth-City"] != "Berlin" {
		t.Errorf("IPv4-mapped: %v", h)
	}
	if res := c.from("not-an-ip", "GET", "/"); res.StatusCode != 200 || res.headers["X-Auth-Ip"] != "127.0.0.1" {
		t.Errorf("malformed X-Forwarded-For: %d %v", res.StatusCode, res.headers)
	}
}

// Without trusted_proxies, X-Forwarded-For is the client's word: ignored.
func TestUntrustedForwardedFor(t *testing.T) {
	g := loadCaddy(t, `{
	admin 127.0.0.1:{ADMIN}
	persist_config off
}
http://127.0.0.1:{PORT} {
	session_auth {
		store memory
		geoip `+geoDB(t)+`
	}
	reverse_proxy {UPSTREAM}
}`, newUpstream(t))
	c := newGeoClient(t, g, windowsEdge)
	c.signInFrom(newYorkIP, "xff-"+randomID())
	if h := c.from(berlinIP, "GET", "/").headers; h["X-Auth-Ip"] != "127.0.0.1" || h["X-Auth-Login-Ip"] != "127.0.0.1" || h["X-Auth-Country"] != "" {
		t.Errorf("untrusted X-Forwarded-For was believed: %v", h)
	}
}
