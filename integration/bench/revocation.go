package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

var revocationTrials = flag.Int("revocation-trials", 10, "revocations timed per kind (cookie, API token, WebSocket)")

// revocationTimings starts two Caddy processes on one Redis, gateway A
// and gateway B (B with and without cache), and times how long after A's
// admin API answers a revocation B refuses the credential: a cookie, an
// API token (each polled at B by one client, one request after another)
// and an open WebSocket through B (closed by B).
func revocationTimings(dir, raddr, upstream string) error {
	block := func(prefixCache string) string {
		return "\tsession_auth {\n\t\tstore redis redis://" + raddr + " {\n\t\t\tkey_prefix rv:\n\t\t}\n\t\tapi_tokens\n" + prefixCache +
			"\t\tlogin_rate 100000000 1m\n\t\tguess_rate 100000000 1m\n\t}\n\treverse_proxy " + upstream + "\n"
	}
	global := func(admin string) string {
		return "{\n\tadmin " + admin + "\n\tpersist_config off\n\tauto_https off\n\tlog default {\n\t\tlevel ERROR\n\t}\n}\n"
	}
	adminA := "127.0.0.1:" + strconv.Itoa(freePort())
	siteA := "http://127.0.0.1:" + strconv.Itoa(freePort())
	a, err := startCaddy(dir, "gateway-a", global(adminA)+siteA+" {\n"+block("")+"}\n")
	if err != nil {
		return err
	}
	defer a.stop()
	siteB := "http://127.0.0.1:" + strconv.Itoa(freePort())
	siteBCache := "http://127.0.0.1:" + strconv.Itoa(freePort())
	b, err := startCaddy(dir, "gateway-b", global("127.0.0.1:"+strconv.Itoa(freePort()))+
		siteB+" {\n"+block("")+"}\n"+siteBCache+" {\n"+block("\t\tcache 1m\n")+"}\n")
	if err != nil {
		return err
	}
	defer b.stop()
	for _, s := range []string{siteA, siteB, siteBCache} {
		if err := waitUp(s); err != nil {
			return err
		}
	}
	admin := "http://" + adminA + "/session-auth"

	fmt.Printf("\nrevocation at gateway A (its admin API) to the first refusal at gateway B, one Redis, %d of each, from A's answer:\n", *revocationTrials)
	fmt.Printf("%-34s %10s %10s %10s %28s\n", "credential at B", "median", "min", "max", "accepted after A answered")
	kinds := []struct {
		name string
		site string
		cred func(i int) (string, string, error) // header, session id
	}{
		{"cookie, B without cache", siteB, func(i int) (string, string, error) { return mintCookie(admin, i) }},
		{"cookie, B with cache", siteBCache, func(i int) (string, string, error) { return mintCookie(admin, i) }},
		{"API token, B without cache", siteB, func(i int) (string, string, error) { return mintToken(admin, i) }},
		{"API token, B with cache", siteBCache, func(i int) (string, string, error) { return mintToken(admin, i) }},
	}
	for k, kind := range kinds {
		var took []time.Duration
		stale := 0
		for i := 0; i < *revocationTrials; i++ {
			hdr, id, err := kind.cred(k*1000 + i)
			if err != nil {
				return err
			}
			d, late, err := timeRefusal(kind.site, hdr, func() error { return revoke(admin, id) })
			if err != nil {
				return fmt.Errorf("%s: %w", kind.name, err)
			}
			took = append(took, d)
			stale += late
		}
		printTimings(kind.name, took, strconv.Itoa(stale))
	}
	for _, site := range []struct{ name, addr string }{{"WebSocket, B without cache", siteB}, {"WebSocket, B with cache", siteBCache}} {
		var took []time.Duration
		for i := 0; i < *revocationTrials; i++ {
			hdr, id, err := mintCookie(admin, 9000+i)
			if err != nil {
				return err
			}
			d, err := timeSocketClose(site.addr, hdr, func() error { return revoke(admin, id) })
			if err != nil {
				return fmt.Errorf("%s: %w", site.name, err)
			}
			took = append(took, d)
		}
		printTimings(site.name, took, "")
	}
	fmt.Println("(a negative time: B refused before A's answer reached the client; accepted after A answered: requests B let through that started after it)")
	return nil
}

func printTimings(name string, took []time.Duration, stale string) {
	slices.Sort(took)
	r := func(d time.Duration) string { return d.Round(10 * time.Microsecond).String() }
	fmt.Printf("%-34s %10s %10s %10s %28s\n", name, r(took[len(took)/2]), r(took[0]), r(took[len(took)-1]), stale)
}

// mintCookie makes a session at A through its admin API: the Cookie
// header that carries it, and its id.
func mintCookie(admin string, i int) (string, string, error) {
	var out struct {
		ID        string `json:"id"`
		SetCookie string `json:"set_cookie"`
	}
	if err := postJSON(admin+"/sessions", `{"user_id":"revoke-`+strconv.Itoa(i)+`"}`, &out); err != nil {
		return "", "", err
	}
	name, value, _ := strings.Cut(strings.SplitN(out.SetCookie, ";", 2)[0], "=")
	if out.ID == "" || value == "" {
		return "", "", fmt.Errorf("minting a session: no id or cookie in the answer")
	}
	return "Cookie: " + name + "=" + value, out.ID, nil
}

// mintToken makes an API token at A through its admin API.
func mintToken(admin string, i int) (string, string, error) {
	var out struct{ ID, Token string }
	if err := postJSON(admin+"/users/revoke-token-"+strconv.Itoa(i)+"/tokens", `{"name":"bench"}`, &out); err != nil {
		return "", "", err
	}
	if out.ID == "" || out.Token == "" {
		return "", "", fmt.Errorf("minting a token: no id or token in the answer")
	}
	return "Authorization: Bearer " + out.Token, out.ID, nil
}

func postJSON(u, body string, out any) error {
	res, err := http.Post(u, "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %d %s", u, res.StatusCode, bytes.TrimSpace(b))
	}
	return json.Unmarshal(b, out)
}

func revoke(admin, id string) error {
	req, _ := http.NewRequest(http.MethodDelete, admin+"/sessions/"+id, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("revoking %s: %d", id, res.StatusCode)
	}
	return nil
}

// timeRefusal polls site with hdr, one request after another, revokes,
// and returns the time from the revocation's answer to the end of the
// first refused request, and how many requests that started after that
// answer were still let through.
func timeRefusal(site, hdr string, revokeAt func() error) (time.Duration, int, error) {
	name, value, _ := strings.Cut(hdr, ": ")
	client := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	type hit struct {
		start, end time.Time
		ok         bool
	}
	get := func() (hit, error) {
		req, _ := http.NewRequest("GET", site+"/app", nil)
		req.Header.Set(name, value)
		req.Header.Set("Accept", "application/json")
		h := hit{start: time.Now()}
		res, err := client.Do(req)
		if err != nil {
			return h, err
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		h.end, h.ok = time.Now(), res.StatusCode == http.StatusOK
		return h, nil
	}
	// The credential works at B first (and B's cache, if any, holds it).
	if h, err := get(); err != nil || !h.ok {
		return 0, 0, fmt.Errorf("the credential is refused at B before the revocation (%v)", err)
	}
	var mu sync.Mutex
	var hits []hit
	done := make(chan error, 1)
	stop := make(chan struct{})
	go func() {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			h, err := get()
			if err != nil {
				done <- err
				return
			}
			mu.Lock()
			hits = append(hits, h)
			mu.Unlock()
			if !h.ok {
				done <- nil
				return
			}
		}
		done <- fmt.Errorf("B still accepts the credential 10 s after the revocation")
	}()
	time.Sleep(20 * time.Millisecond) // a few requests before
	if err := revokeAt(); err != nil {
		close(stop)
		<-done
		return 0, 0, err
	}
	answered := time.Now()
	if err := <-done; err != nil {
		return 0, 0, err
	}
	mu.Lock()
	defer mu.Unlock()
	last := hits[len(hits)-1]
	if last.ok {
		return 0, 0, fmt.Errorf("the poll stopped before B refused")
	}
	stale := 0
	for _, h := range hits {
		if h.ok && h.start.After(answered) {
			stale++
		}
	}
	return last.end.Sub(answered), stale, nil
}

// timeSocketClose opens a WebSocket through site with hdr, revokes, and
// returns the time from the revocation's answer to the socket's close.
func timeSocketClose(site, hdr string, revokeAt func() error) (time.Duration, error) {
	name, value, _ := strings.Cut(hdr, ": ")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(site, "http")+"/ws", &websocket.DialOptions{HTTPHeader: http.Header{name: {value}}})
	if err != nil {
		return 0, fmt.Errorf("opening a WebSocket: %w", err)
	}
	defer conn.CloseNow()
	if err := conn.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
		return 0, err
	}
	if _, _, err := conn.Read(ctx); err != nil {
		return 0, fmt.Errorf("the WebSocket echoes nothing: %w", err)
	}
	closed := make(chan time.Time, 1)
	go func() {
		_, _, _ = conn.Read(ctx) // ends when B closes the socket
		closed <- time.Now()
	}()
	if err := revokeAt(); err != nil {
		return 0, err
	}
	answered := time.Now()
	select {
	case at := <-closed:
		if ctx.Err() != nil {
			return 0, fmt.Errorf("B kept the socket open 15 s")
		}
		return at.Sub(answered), nil
	case <-ctx.Done():
		return 0, fmt.Errorf("B kept the socket open 15 s")
	}
}
