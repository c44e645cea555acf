package sessionauth

import (
	"cmp"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// What the console shows of the store's counters (SPEC 17): the last
// consoleHours hours and consoleDays days, of the StatsHours and
// StatsDays the store keeps.
const (
	consoleHours = 24
	consoleDays  = 30
	maxShareRows = 8 // a breakdown's bars; the rest are "other"
)

// statsJSON is GET {endpoints}/admin/stats. recent_risk holds the latest
// risk events and failed sign-ins (type risk or login_failed), newest
// first.
type statsJSON struct {
	ActiveSessions int             `json:"active_sessions"`
	Hourly         []bucketJSON    `json:"hourly"`
	Daily          []bucketJSON    `json:"daily"`
	ByCountry      map[string]int  `json:"by_country"`
	ByDeviceType   map[string]int  `json:"by_device_type"`
	ByBrowser      map[string]int  `json:"by_browser"`
	RecentRisk     []session.Event `json:"recent_risk"`
}

type bucketJSON struct {
	At            string `json:"at"`
	SignIns       int64  `json:"sign_ins"`
	FailedSignIns int64  `json:"failed_sign_ins"`
	Revocations   int64  `json:"revocations"`
}

func lastBuckets(bs []session.StatsBucket, n int) []session.StatsBucket {
	return bs[max(0, len(bs)-n):]
}

func toStatsJSON(st *session.Stats) statsJSON {
	out := statsJSON{ActiveSessions: st.ActiveSessions, ByCountry: st.ByCountry, ByDeviceType: st.ByDeviceType,
		ByBrowser: st.ByBrowser, RecentRisk: append([]session.Event{}, st.Recent...)}
	conv := func(bs []session.StatsBucket) []bucketJSON {
		out := make([]bucketJSON, len(bs))
		for i, b := range bs {
			out[i] = bucketJSON{rfc3339(b.At), b.SignIns, b.FailedSignIns, b.Revocations}
		}
		return out
	}
	out.Hourly, out.Daily = conv(lastBuckets(st.Hourly, consoleHours)), conv(lastBuckets(st.Daily, consoleDays))
	return out
}

// serveStats answers GET {endpoints}/admin/stats.
func (c *adminConsole) serveStats(w http.ResponseWriter, r *http.Request) error {
	if _, done, err := c.admin(w, r); done {
		return err
	}
	st, err := c.h.store.Stats(r.Context(), c.h.now(), c.h.policy)
	if err != nil {
		return c.h.storeUnavailable(w, r, err)
	}
	return writeJSON(w, http.StatusOK, toStatsJSON(st))
}

// adminPageData is what the console page shows.
type adminPageData struct {
	Site, Endpoints, CSRF, Name string
	Active                      int
	Partial                     bool
	Hourly, Daily               timeChart
	Shares                      []shareChart
	Recent                      []recentRow
	Query                       string
	Searched                    bool
	Results                     []adminSessionRow
	Users                       []adminUserRow
	Confirm                     string
	StaleFor, Notice            string
}

type recentRow struct{ When, At, Who, What, Where, Why string }

type adminSessionRow struct {
	ID, UserID, Device, Browser, OS, IP, Place, SignedIn, LastActive, Risk string
	Current                                                                bool
}

type adminUserRow struct{ ID, Path string }

// show answers GET {endpoints}/admin: the page for a browser, the
// figures as JSON for anything else.
func (c *adminConsole) show(w http.ResponseWriter, r *http.Request) error {
	cur, done, err := c.admin(w, r)
	if done {
		return err
	}
	now := c.h.now()
	st, err := c.h.store.Stats(r.Context(), now, c.h.policy)
	if err != nil {
		return c.h.storeUnavailable(w, r, err)
	}
	if !wantsPage(r) {
		return writeJSON(w, http.StatusOK, toStatsJSON(st))
	}
	data := adminPageData{Site: siteLabel(c.h.BaseURL, r), Endpoints: c.h.Endpoints, CSRF: csrfToken(cur),
		Name: orDefault(cur.Name, cur.UserID), Active: st.ActiveSessions, Partial: st.Partial, Confirm: adminConfirm,
		Hourly: drawTimeChart("hourly", "Sign-ins, failed sign-ins and revocations per hour, last 24 hours (UTC)",
			lastBuckets(st.Hourly, consoleHours), "15:04", 6),
		Daily: drawTimeChart("daily", "Sign-ins, failed sign-ins and revocations per day, last 30 days (UTC)",
			lastBuckets(st.Daily, consoleDays), "2 Jan", 7),
		Shares: []shareChart{
			drawShareChart("by-country", "Active sessions by country", st.ByCountry),
			drawShareChart("by-device", "Active sessions by device type", st.ByDeviceType),
			drawShareChart("by-browser", "Active sessions by browser", st.ByBrowser),
		}}
	for _, e := range st.Recent {
		data.Recent = append(data.Recent, recentRow{When: relTime(e.At, now), At: e.At.UTC().Format(time.RFC1123),
			Who: orDefault(e.UserID, "an unknown account"), What: eventWords(e), Where: placeOf(e.IP, e.City, e.Country) + ipSuffix(e.IP), Why: e.Reason})
	}
	if c.h.now().Sub(cur.AuthenticatedOrCreated()) > adminFresh {
		data.StaleFor = humanDuration(adminFresh)
	}
	q := r.URL.Query()
	data.Notice = adminNotice(q.Get("done"), q.Get("n"))
	if data.Query = strings.TrimSpace(q.Get("q")); data.Query != "" {
		data.Query = data.Query[:min(len(data.Query), 256)]
		found, err := c.search(r.Context(), data.Query, now)
		if err != nil {
			return c.h.storeUnavailable(w, r, err)
		}
		data.Searched = true
		seen := map[string]bool{}
		for _, s := range found {
			data.Results = append(data.Results, adminSessionRow{ID: s.ID, UserID: s.UserID, Device: orDefault(s.Device, "Unknown device"),
				Browser: s.Browser, OS: s.OS, IP: orDefault(s.IP, "unknown"), Place: placeOf(s.IP, s.City, s.Country),
				SignedIn: relTime(s.CreatedAt, now), LastActive: relTime(s.LastActiveAt, now), Risk: s.Risk, Current: s.ID == cur.ID})
			if !seen[s.UserID] {
				seen[s.UserID] = true
				data.Users = append(data.Users, adminUserRow{ID: s.UserID, Path: url.PathEscape(s.UserID)})
			}
		}
	}
	w.Header().Set("X-CSRF-Token", csrfToken(cur)) // for JSON clients' POSTs
	htmlHeaders(w)
	w.Header().Set("Referrer-Policy", "same-origin") // the forms must carry this origin (see renderSessions)
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	return renderPage(w, pageAdmin, data)
}

func ipSuffix(ip string) string {
	if ip == "" {
		return ""
	}
	return " (" + ip + ")"
}

// eventWords says what a recent event was.
func eventWords(e session.Event) string {
	if e.Type == session.EventLoginFailed {
		return "Failed sign-in"
	}
	return "Risk: " + strings.ReplaceAll(e.Reason, "-", " ")
}

func adminNotice(done, n string) string {
	count, err := strconv.Atoi(n)
	if err != nil || count < 0 {
		return ""
	}
	switch done {
	case "session", "user", "everyone":
		return "Signed out " + plural(count, "session") + "."
	}
	return ""
}

// The charts are drawn here, as numbers for the template's SVG: no
// script, so the page's CSP stays as it is. Each chart has a title and a
// description (its totals), and the page a table of its numbers.

// Plot area of a time chart, in the SVG's own units (viewBox 0 0 600 230).
const (
	plotLeft, plotRight, plotTop, plotBottom = 48.0, 596.0, 12.0, 196.0
)

type timeChart struct {
	ID, Title, Desc string
	Max             int64
	Bars            []svgBar
	Ticks           []svgText
	Rows            []timeRow
}

type svgBar struct {
	X, Y, W, H  float64
	Fill, Title string
}

type svgText struct {
	X            float64
	Text, Anchor string
}

type timeRow struct {
	Label                        string
	SignIns, Failed, Revocations int64
}

// The series' colours: the layout's accent, its "bad" red, and an amber.
const (
	fillSignIn = "#1f5fd1"
	fillFailed = "#b42318"
	fillRevoke = "#c27c0e"
)

func round1(f float64) float64 { return math.Round(f*10) / 10 }

func drawTimeChart(id, title string, bs []session.StatsBucket, layout string, tickEvery int) timeChart {
	ch := timeChart{ID: id, Title: title}
	var tot [3]int64
	for _, b := range bs {
		ch.Max = max(ch.Max, b.SignIns, b.FailedSignIns, b.Revocations)
		tot[0], tot[1], tot[2] = tot[0]+b.SignIns, tot[1]+b.FailedSignIns, tot[2]+b.Revocations
	}
	ch.Desc = fmt.Sprintf("%s, %s and %s in all.", plural(int(tot[0]), "sign-in"), plural(int(tot[1]), "failed sign-in"), plural(int(tot[2]), "revocation"))
	scale := 1.0
	if ch.Max > 0 {
		scale = (plotBottom - plotTop) / float64(ch.Max)
	}
	group := (plotRight - plotLeft) / float64(max(len(bs), 1))
	w := round1(group * 0.28)
	for i, b := range bs {
		label := b.At.UTC().Format(layout)
		x := plotLeft + float64(i)*group + group*0.08
		for j, s := range []struct {
			n          int64
			fill, what string
		}{{b.SignIns, fillSignIn, "sign-in"}, {b.FailedSignIns, fillFailed, "failed sign-in"}, {b.Revocations, fillRevoke, "revocation"}} {
			if s.n == 0 {
				continue
			}
			h := max(float64(s.n)*scale, 2) // a count of one stays visible
			ch.Bars = append(ch.Bars, svgBar{X: round1(x + float64(j)*w), Y: round1(plotBottom - h), W: w, H: round1(h),
				Fill: s.fill, Title: label + ": " + plural(int(s.n), s.what)})
		}
		if (len(bs)-1-i)%tickEvery == 0 {
			t := svgText{X: round1(plotLeft + (float64(i)+0.5)*group), Text: label, Anchor: "middle"}
			if i == len(bs)-1 { // the newest ends at the plot's edge, not past it
				t.X, t.Anchor = plotRight, "end"
			}
			ch.Ticks = append(ch.Ticks, t)
		}
		ch.Rows = append(ch.Rows, timeRow{label, b.SignIns, b.FailedSignIns, b.Revocations})
	}
	return ch
}

type shareChart struct {
	ID, Title, Desc string
	Height          float64
	Rows            []shareRow
}

type shareRow struct {
	Label       string
	Count       int
	Y, W, TX    float64
	TextY, BarY float64
}

// drawShareChart draws a breakdown as horizontal bars, the largest first
// (viewBox 0 0 400 Height).
func drawShareChart(id, title string, counts map[string]int) shareChart {
	ch := shareChart{ID: id, Title: title}
	type kv struct {
		k string
		n int
	}
	var all []kv
	total := 0
	for k, n := range counts {
		all = append(all, kv{k, n})
		total += n
	}
	slices.SortFunc(all, func(a, b kv) int { return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.k, b.k)) })
	if len(all) > maxShareRows {
		other := 0
		for _, e := range all[maxShareRows-1:] {
			other += e.n
		}
		all = append(all[:maxShareRows-1], kv{"other", other})
	}
	top := 1
	if len(all) > 0 {
		top = max(all[0].n, 1)
	}
	for i, e := range all {
		y := float64(i) * 32
		w := round1(math.Max(220*float64(e.n)/float64(top), 2))
		label := e.k
		if r := []rune(label); len(r) > 13 {
			label = string(r[:12]) + "…"
		}
		ch.Rows = append(ch.Rows, shareRow{Label: label, Count: e.n, Y: y, W: w, TX: round1(136 + w + 6), TextY: y + 22, BarY: y + 7})
	}
	ch.Height = float64(max(len(all), 1)) * 32
	ch.Desc = plural(total, "active session") + " in all."
	return ch
}
