package integration

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

var nextLink = regexp.MustCompile(`^<(/session-auth/[^>]+)>; rel="next"$`)

// adminPages GETs path and every page after it, checking each page's
// length and Link; it returns the ids (or event keys) in order.
func (g *gateway) adminPages(path string, pageLen int) (items []map[string]any, pages int) {
	g.t.Helper()
	for path != "" {
		if pages > 100 {
			g.t.Fatalf("more than 100 pages: the Links go round in circles (%s)", path)
		}
		req, _ := http.NewRequest("GET", g.admin+path, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			g.t.Fatal(err)
		}
		var page []map[string]any
		err = json.NewDecoder(res.Body).Decode(&page)
		res.Body.Close()
		if res.StatusCode != 200 || err != nil {
			g.t.Fatalf("GET %s: %d %v", path, res.StatusCode, err)
		}
		pages++
		items = append(items, page...)
		link := res.Header.Get("Link")
		if link == "" {
			if len(page) > pageLen {
				g.t.Fatalf("GET %s: %d entries, limit %d", path, len(page), pageLen)
			}
			return items, pages
		}
		m := nextLink.FindStringSubmatch(link)
		if m == nil || len(page) != pageLen {
			g.t.Fatalf("GET %s: %d entries, Link %q", path, len(page), link)
		}
		p, _, _ := strings.Cut(path, "?")
		if next, _, _ := strings.Cut(m[1], "?"); next != p {
			g.t.Fatalf("Link to %s from %s", m[1], path)
		}
		path = m[1]
	}
	return items, pages
}

// The admin lists answer a page at a time (?limit=, default 100, at most
// 1000) with a Link to the next page; following the Links lists every
// entry once, in the order of a single page.
func TestAdminListsArePaged(t *testing.T) {
	stores(t, func(t *testing.T, store string, _ *redisserver.Server) {
		g := loadCaddy(t, site(store+"\nmax_sessions 0"), newUpstream(t))
		user := "paged/" + randomID()
		esc := url.PathEscape(user)
		ip := "2001:db8::" + randomID()[:4]
		for i := 0; i < 7; i++ {
			if code, body := g.adminDo("POST", "/session-auth/sessions", `{"user_id":"`+user+`","ip_address":"`+ip+`"}`); code != 201 {
				t.Fatalf("mint: %d %s", code, body)
			}
		}
		if code, _ := g.adminDo("DELETE", "/session-auth/users/"+esc+"/sessions", ""); code != 200 {
			t.Fatal("revoke")
		}
		for i := 0; i < 3; i++ { // active again, for ?ip=
			g.adminDo("POST", "/session-auth/sessions", `{"user_id":"`+user+`","ip_address":"`+ip+`"}`)
		}
		for _, tc := range []struct {
			path string
			all  int
		}{
			{"/session-auth/users/" + esc + "/sessions", 10},
			{"/session-auth/users/" + esc + "/events", 17}, // 10 logins, 7 revokes
			{"/session-auth/sessions?ip=" + url.QueryEscape(ip), 3},
		} {
			whole, pages := g.adminPages(tc.path, 100)
			if len(whole) != tc.all || pages != 1 {
				t.Fatalf("%s: %d entries in %d pages, want %d in one", tc.path, len(whole), pages, tc.all)
			}
			sep := "?"
			if strings.Contains(tc.path, "?") {
				sep = "&"
			}
			paged, pages := g.adminPages(tc.path+sep+"limit=2", 2)
			if pages != (tc.all+1)/2 || len(paged) != len(whole) {
				t.Fatalf("%s: %d entries in %d pages of 2, want %d", tc.path, len(paged), pages, len(whole))
			}
			for i := range whole {
				a, _ := json.Marshal(whole[i])
				b, _ := json.Marshal(paged[i])
				if string(a) != string(b) {
					t.Fatalf("%s: entry %d differs when paged:\n%s\n%s", tc.path, i, a, b)
				}
			}
			bad := base64.RawURLEncoding.EncodeToString([]byte("nonsense"))
			for _, q := range []string{"limit=0", "limit=1001", "limit=x", "cursor=%%%", "cursor=" + bad, "cursor=@@"} {
				if code, body := g.adminDo("GET", tc.path+sep+q, ""); code != 400 || !strings.Contains(body, `"error"`) {
					t.Errorf("%s%s%s: %d %s", tc.path, sep, q, code, body)
				}
			}
		}
	})
}

// The CLI follows the pages of a list to print all of it.
func TestCLIFollowsPages(t *testing.T) {
	g := loadCaddy(t, site("store memory\nmax_sessions 0"), newUpstream(t))
	addr := strings.TrimPrefix(g.admin, "http://")
	user := "cli-pages-" + randomID()
	var ids []string
	for i := 0; i < 5; i++ {
		code, body := g.adminDo("POST", "/session-auth/sessions", `{"user_id":"`+user+`"}`)
		var minted struct{ ID string }
		if code != 201 || json.Unmarshal([]byte(body), &minted) != nil {
			t.Fatalf("mint: %d %s", code, body)
		}
		ids = append(ids, minted.ID)
	}
	out, err := runCLI(t, "list", "--user", user, "--page-size", "2", "--address", addr)
	if err != nil || strings.Count(out, " active ") != 5 {
		t.Fatalf("list in pages of 2: %v\n%s", err, out)
	}
	for _, id := range ids {
		if !strings.Contains(out, id[:18]) { // shown by a unique prefix
			t.Fatalf("list lacks %s:\n%s", id, out)
		}
	}
	out, err = runCLI(t, "list", "--user", user, "--page-size", "2", "--json", "--address", addr)
	var list []map[string]any
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 5 {
		t.Fatalf("list --json in pages of 2: %v\n%s", err, out)
	}
	out, err = runCLI(t, "events", "--user", user, "--page-size", "2", "--address", addr)
	if err != nil || strings.Count(out, " login ") != 5 {
		t.Fatalf("events in pages of 2: %v\n%s", err, out)
	}
	out, err = runCLI(t, "events", "--user", user, "--limit", "3", "--page-size", "2", "--address", addr)
	if err != nil || strings.Count(out, " login ") != 3 {
		t.Fatalf("events --limit 3 in pages of 2: %v\n%s", err, out)
	}
	for _, args := range [][]string{
		{"list", "--user", user, "--page-size", "0", "--address", addr},
		{"events", "--user", user, "--page-size", "1001", "--address", addr},
	} {
		if out, err := runCLI(t, args...); err == nil {
			t.Errorf("%v succeeded: %s", args, out)
		}
	}
}
