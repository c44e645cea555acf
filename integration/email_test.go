package integration

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// mailServer is a real SMTP server (go-smtp) on 127.0.0.1: with STARTTLS
// on a test certificate unless plain, with PLAIN auth, refusing the first
// `refuse` messages with a temporary error, recording the rest.
type mailServer struct {
	addr   string
	caFile string
	srv    *smtp.Server

	mu       sync.Mutex
	refuse   int
	refused  int
	mailFrom int // MAIL FROM commands seen, refused or not
	auths    []string
	msgs     []receivedMail
}

type receivedMail struct {
	from string
	to   []string
	data []byte
	tls  bool
}

func newMailServer(t *testing.T, addr string, starttls bool, refuse int) *mailServer {
	t.Helper()
	ms := &mailServer{refuse: refuse}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &mailSession{ms: ms, conn: c}, nil
	}))
	s.Domain = "mail.test"
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	s.AllowInsecureAuth = !starttls
	if starttls {
		certs := redisserver.MakeCerts(t)
		pair, err := tls.LoadX509KeyPair(certs.ServerCert, certs.ServerKey)
		if err != nil {
			t.Fatal(err)
		}
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{pair}}
		ms.caFile = certs.CA
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ms.addr, ms.srv = l.Addr().String(), s
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close() })
	return ms
}

func (ms *mailServer) received() []receivedMail {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return append([]receivedMail(nil), ms.msgs...)
}

type mailSession struct {
	ms   *mailServer
	conn *smtp.Conn
	cur  receivedMail
}

func (s *mailSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *mailSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		s.ms.mu.Lock()
		defer s.ms.mu.Unlock()
		s.ms.auths = append(s.ms.auths, username+":"+password)
		if username != "mailer" || password != "mail-secret" {
			return errors.New("bad credentials")
		}
		return nil
	}), nil
}

func (s *mailSession) Mail(from string, _ *smtp.MailOptions) error {
	s.ms.mu.Lock()
	defer s.ms.mu.Unlock()
	s.ms.mailFrom++
	_, isTLS := s.conn.TLSConnectionState()
	s.cur = receivedMail{from: from, tls: isTLS}
	return nil
}

func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.ms.mu.Lock()
	defer s.ms.mu.Unlock()
	if s.ms.refused < s.ms.refuse {
		s.ms.refused++
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	}
	s.cur.data = b
	s.ms.msgs = append(s.ms.msgs, s.cur)
	return nil
}

func (s *mailSession) Reset()        { s.cur = receivedMail{} }
func (s *mailSession) Logout() error { return nil }

// parsedMail is a received message taken apart with net/mail and
// mime/multipart.
type parsedMail struct {
	header     mail.Header
	text, html string
	textType   string
	htmlType   string
}

func parseMail(t *testing.T, raw []byte) parsedMail {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parsing the message: %v\n%s", err, raw)
	}
	p := parsedMail{header: msg.Header}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/alternative" {
		t.Fatalf("Content-Type %q (%v): want multipart/alternative", msg.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextPart() // undoes quoted-printable itself
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading a part: %v", err)
		}
		body, err := io.ReadAll(part)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n")) // lines end in CRLF on the wire
		ct := part.Header.Get("Content-Type")
		switch {
		case strings.HasPrefix(ct, "text/plain"):
			p.text, p.textType = string(body), ct
		case strings.HasPrefix(ct, "text/html"):
			p.html, p.htmlType = string(body), ct
		default:
			t.Errorf("unexpected part %q", ct)
		}
	}
	return p
}

// emailSite is a whole Caddyfile with a notify email block; the site
// answers as localhost and 127.0.0.1, and base_url names localhost.
func emailSite(store, notifyEmail string, extra ...string) string {
	return `{
	admin 127.0.0.1:{ADMIN}
	persist_config off
	auto_https off
	servers {
		trusted_proxies static 127.0.0.0/8
	}
` + strings.Join(extra, "\n") + `
}
http://localhost:{PORT}, http://127.0.0.1:{PORT} {
	session_auth {
		` + store + `
		max_sessions 0
		login_rate 100000 1m
		base_url http://localhost:{PORT}
		notify email {
` + notifyEmail + `
		}
	}
	reverse_proxy {UPSTREAM}
}
`
}

func mailBlock(ms *mailServer, more ...string) string {
	lines := []string{"smtp " + ms.addr, `from "Example Sessions <no-reply@example.com>"`}
	if ms.caFile != "" {
		lines = append(lines, "username mailer", "password {env.SESSIONAUTH_TEST_SMTP_PASSWORD}", "tls_ca "+ms.caFile)
	}
	return "\t\t\t" + strings.Join(append(lines, more...), "\n\t\t\t")
}

// The new-sign-in mail: to the user's address, over STARTTLS with the
// credentials, once, multipart text + HTML that says what, when, on what
// and where, with a "This wasn't me" link that ends the session (GET
// confirms, POST acts) and a link to the sessions page on base_url.
func TestEmailOnNewSignIn(t *testing.T) {
	t.Setenv("SESSIONAUTH_TEST_SMTP_PASSWORD", "mail-secret")
	stores(t, func(t *testing.T, store string, _ *redisserver.Server) {
		ms := newMailServer(t, "", true, 0)
		g := loadCaddy(t, emailSite(store, mailBlock(ms)), newUpstream(t))
		user := "mail-" + randomID()
		signIn := func(c *geoClient, ip string) {
			t.Helper()
			q := "/login?user=" + user + "&status=303&email=ada%40example.com&name=Ada+Lovelace"
			res := c.from(ip, "POST", q)
			if ck := sessionCookie(res, "session"); res.StatusCode != 303 || ck == nil {
				t.Fatalf("sign-in: %d", res.StatusCode)
			} else {
				c.cookie = ck.Value
			}
		}
		first := newGeoClient(t, g, windowsEdge)
		signIn(first, berlinIP) // the first session: nothing to tell
		second := newGeoClient(t, g, iPhoneChrome)
		signIn(second, newYorkIP)
		secondID := strings.SplitN(second.cookie, ".", 2)[0]

		waitUntil(t, 20*time.Second, func() bool { return len(ms.received()) >= 1 })
		waitUntil(t, 10*time.Second, func() bool {
			return g.metricValue(`caddy_session_auth_notifications_total{result="delivered"}`) >= 1
		})
		got := ms.received()
		if len(got) != 1 {
			t.Fatalf("%d mails for one new sign-in (new_login and new_device): want one", len(got))
		}
		m := got[0]
		if !m.tls {
			t.Error("the mail went in clear")
		}
		if len(m.to) != 1 || m.to[0] != "ada@example.com" || m.from != "no-reply@example.com" {
			t.Errorf("envelope from %q to %q", m.from, m.to)
		}
		p := parseMail(t, m.data)
		to, err := p.header.AddressList("To")
		if err != nil || len(to) != 1 || to[0].Address != "ada@example.com" || to[0].Name != "Ada Lovelace" {
			t.Errorf("To %v (%v)", to, err)
		}
		if from, err := mail.ParseAddress(p.header.Get("From")); err != nil || from.Address != "no-reply@example.com" {
			t.Errorf("From %q", p.header.Get("From"))
		}
		if subj := p.header.Get("Subject"); subj != "Sign-in to your account from a new device" {
			t.Errorf("Subject %q", subj)
		}
		if _, err := p.header.Date(); err != nil {
			t.Errorf("Date: %v", err)
		}
		if !strings.Contains(p.textType, "charset=UTF-8") || !strings.Contains(p.htmlType, "charset=UTF-8") {
			t.Errorf("parts %q, %q", p.textType, p.htmlType)
		}
		t.Logf("text part:\n%s", p.text)
		wantLines := []string{
			"Hello Ada Lovelace,",
			"Someone signed in to your account on a device or browser you haven't used recently, while you were already signed in somewhere else.",
			" UTC", "Device:   iPhone", "Browser:  Chrome", "OS:       iOS", "IP:       " + newYorkIP,
			"This wasn't me",
		}
		for _, want := range wantLines {
			if !strings.Contains(p.text, want) {
				t.Errorf("text part lacks %q", want)
			}
		}
		for _, want := range []string{"Hello Ada Lovelace,", "iPhone", "Chrome", newYorkIP, "This wasn", "<a href=\"http://localhost:"} {
			if !strings.Contains(p.html, want) {
				t.Errorf("HTML part lacks %q", want)
			}
		}
		base := strings.Replace(g.base, "127.0.0.1", "localhost", 1)
		sessionsURL := base + "/.auth/sessions"
		if !strings.Contains(p.text, sessionsURL+"\n") {
			t.Errorf("no sessions link %s in the text part", sessionsURL)
		}
		var link string
		for _, line := range strings.Split(p.text, "\n") {
			if strings.HasPrefix(line, base+"/.auth/revoke?token="+secondID+".") {
				link = line
			}
		}
		if link == "" {
			t.Fatalf("no revoke link for session %s on %s in the text part", secondID, base)
		}
		if !strings.Contains(p.html, `href="`+strings.ReplaceAll(link, "&", "&amp;")+`"`) {
			t.Error("the HTML part's link differs from the text part's")
		}

		// The sessions page link leads to the page (for a signed-in browser).
		if res := second.from(newYorkIP, "GET", strings.TrimPrefix(sessionsURL, base)); res.StatusCode != 200 {
			t.Errorf("sessions page: %d", res.StatusCode)
		}
		// "This wasn't me", followed as a mail reader would: GET shows, POST ends.
		hc := &http.Client{Timeout: 10 * time.Second}
		res, err := hc.Get(link)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(body), "Sign out this session?") {
			t.Fatalf("GET link: %d %s", res.StatusCode, body)
		}
		if second.from(newYorkIP, "GET", "/").StatusCode != 200 {
			t.Fatal("GET on the link ended the session")
		}
		res, err = hc.Post(link, "application/x-www-form-urlencoded", nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(body), "Signed out") {
			t.Fatalf("POST link: %d %s", res.StatusCode, body)
		}
		if second.from(newYorkIP, "GET", "/").StatusCode != 401 {
			t.Fatal("the link did not end the session")
		}
		if first.from(berlinIP, "GET", "/").StatusCode != 200 {
			t.Fatal("the link ended another session")
		}
		ms.mu.Lock()
		auths := append([]string(nil), ms.auths...)
		ms.mu.Unlock()
		if len(auths) == 0 || auths[0] != "mailer:mail-secret" {
			t.Errorf("SMTP auth: %v", auths)
		}
	})
}

// tls starttls (the default) sends nothing to a server without STARTTLS,
// and says so in the log; tls none, when configured, sends the queued mail.
func TestEmailRefusesServerWithoutSTARTTLS(t *testing.T) {
	ms := newMailServer(t, "", false, 0)
	logFile := t.TempDir() + "/caddy.log"
	logging := "\tlog {\n\t\toutput file " + logFile + "\n\t\tformat json\n\t}"
	up := newUpstream(t)
	g := loadCaddy(t, emailSite("store memory", mailBlock(ms), logging), up)
	user := "plain-" + randomID()
	for i := 0; i < 2; i++ {
		newClient(t, g).signIn(user, "email", "bob@example.com")
	}
	waitUntil(t, 20*time.Second, func() bool {
		b, _ := os.ReadFile(logFile)
		return strings.Contains(string(b), "does not offer STARTTLS") && strings.Contains(string(b), `"level":"error"`)
	})
	ms.mu.Lock()
	sent := ms.mailFrom
	ms.mu.Unlock()
	if sent != 0 || len(ms.received()) != 0 {
		t.Fatalf("%d MAIL FROM, %d mails to a server without STARTTLS", sent, len(ms.received()))
	}

	// Said in the config: in clear. The queued mail goes on its next try.
	g.load(strings.NewReplacer("{PORT}", fmt.Sprint(g.port), "{ADMIN}", strings.TrimPrefix(g.admin, "http://127.0.0.1:"),
		"{UPSTREAM}", up.addr).Replace(emailSite("store memory", mailBlock(ms, "tls none"), logging)))
	waitUntil(t, 20*time.Second, func() bool { return len(ms.received()) == 1 })
	if m := ms.received()[0]; m.tls || m.to[0] != "bob@example.com" {
		t.Errorf("mail: tls %v to %v", m.tls, m.to)
	}
}

// A server that refuses twice and then accepts gets the mail once.
func TestEmailRetriedUntilAccepted(t *testing.T) {
	t.Setenv("SESSIONAUTH_TEST_SMTP_PASSWORD", "mail-secret")
	ms := newMailServer(t, "", true, 2)
	g := loadCaddy(t, emailSite("store memory", mailBlock(ms)), newUpstream(t))
	user := "retry-" + randomID()
	for i := 0; i < 2; i++ {
		newClient(t, g).signIn(user, "email", "carol@example.com")
	}
	waitUntil(t, 30*time.Second, func() bool {
		return g.metricValue(`caddy_session_auth_notifications_total{result="delivered"}`) == 1
	})
	if n := len(ms.received()); n != 1 {
		t.Fatalf("%d mails after two refusals: want 1", n)
	}
	if r := g.metricValue(`caddy_session_auth_notifications_total{result="retried"}`); r != 2 {
		t.Errorf("%v retries: want 2", r)
	}
}

// A mail server that accepts the connection and never answers: sign-ins,
// requests and revocations answer while it hangs.
func TestHangingMailServerDelaysNothing(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held <- c // no greeting, ever
		}
	}()
	t.Cleanup(func() {
		l.Close()
		for {
			select {
			case c := <-held:
				c.Close()
			default:
				return
			}
		}
	})
	g := loadCaddy(t, emailSite("store memory", "smtp "+l.Addr().String()+"\nfrom no-reply@example.com"), newUpstream(t))
	user := "hang-" + randomID()
	newClient(t, g).signIn(user, "email", "dan@example.com")
	newClient(t, g).signIn(user, "email", "dan@example.com") // queues a mail
	var conn net.Conn
	select {
	case conn = <-held: // the gateway is now stuck in the mail server
	case <-time.After(20 * time.Second):
		t.Fatal("the gateway never called the mail server")
	}
	held <- conn
	for i := 0; i < 5; i++ {
		c := newClient(t, g)
		c.signIn(user, "email", "dan@example.com")
		if res := c.do("GET", "/"); res.StatusCode != 200 {
			t.Fatalf("request %d with a hanging mail server: %d", i, res.StatusCode)
		}
	}
	if code, _ := g.adminDo("DELETE", "/session-auth/users/"+user+"/sessions", ""); code != 200 {
		t.Fatalf("revoking with a hanging mail server: %d", code)
	}
	// All of it answered while the server still held the connection.
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := conn.Read(make([]byte, 1)); err == nil || !isTimeout(err) {
		t.Fatalf("the gateway gave up on the hanging server before the requests were done: %v", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// With the file store and Redis, a mail queued while the mail server is
// down survives a gateway restart and is delivered once after it.
func TestEmailSurvivesRestart(t *testing.T) {
	run := func(t *testing.T, store string) {
		port := redisserver.FreePort(t)
		addr := fmt.Sprintf("127.0.0.1:%d", port) // nobody listens yet
		block := "smtp " + addr + "\nfrom no-reply@example.com\ntls none"
		up := newUpstream(t)
		g := loadCaddy(t, emailSite(store, block), up)
		user := "restart-" + randomID()
		for i := 0; i < 3; i++ {
			newClient(t, g).signIn(user, "email", "erin@example.com") // the 2nd and 3rd queue a mail each
		}
		waitUntil(t, 20*time.Second, func() bool {
			return g.metricValue(`caddy_session_auth_notifications_total{result="retried"}`) >= 2
		})
		stopCaddy()

		ms := newMailServer(t, addr, false, 0)
		g = loadCaddy(t, emailSite(store, block), up)
		waitUntil(t, 30*time.Second, func() bool {
			return g.metricValue(`caddy_session_auth_notifications_total{result="delivered"}`) >= 2
		})
		if n := len(ms.received()); n != 2 {
			t.Fatalf("%d mails for two queued before the restart: want 2", n)
		}
	}
	t.Run("file", func(t *testing.T) { run(t, "store file "+filepath.Join(t.TempDir(), "sessions.db")) })
	t.Run("redis", func(t *testing.T) {
		srv := redisserver.Start(t)
		run(t, fmt.Sprintf("store redis redis://%s {\n key_prefix %s:\n }", srv.Addr, randomID()))
	})
}

// The intruder's user agent is the intruder's text: a 1 KB one with
// markup and links shows in the mail only as the device, browser and OS
// parsed from it, none of its own words (no link to follow, nothing to
// escape). A name with CR/LF injects no header, and there is one
// recipient.
func TestEmailShowsTheDeviceNotTheUserAgent(t *testing.T) {
	t.Setenv("SESSIONAUTH_TEST_SMTP_PASSWORD", "mail-secret")
	ms := newMailServer(t, "", true, 0)
	g := loadCaddy(t, emailSite("store memory", mailBlock(ms)), newUpstream(t))
	user := "xss-" + randomID()
	ua := "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 " +
		"<img src=x onerror=alert(1)> Your account is locked: https://evil.example/unlock or www.evil.example "
	ua += strings.Repeat("see evil.example ", (1000-len(ua))/17)
	mint := func(name string) {
		body := fmt.Sprintf(`{"user_id":%q,"email":"frank@example.com","name":%q,"user_agent":%q}`, user, name, ua)
		if code, res := g.adminDo("POST", "/session-auth/sessions", body); code != 201 {
			t.Fatalf("mint: %d %s", code, res)
		}
	}
	mint("Frank")
	mint("Frank\r\nBcc: victim@example.com\r\nX-Injected: yes")
	// And through the hand-off, with the same user agent.
	c := newGeoClient(t, g, ua)
	if res := c.from(berlinIP, "POST", "/login?status=303&email=frank%40example.com&user="+user); res.StatusCode != 303 {
		t.Fatalf("hand-off: %d", res.StatusCode)
	}
	waitUntil(t, 20*time.Second, func() bool { // the second mint's and the hand-off's
		return g.metricValue(`caddy_session_auth_notifications_total{result="delivered"}`) >= 2
	})
	got := ms.received()
	if len(got) == 0 {
		t.Fatal("no mail")
	}
	for _, m := range got {
		if len(m.to) != 1 || m.to[0] != "frank@example.com" {
			t.Errorf("recipients %v", m.to)
		}
		p := parseMail(t, m.data)
		for _, h := range []string{"Bcc", "X-Injected"} {
			if v := p.header.Get(h); v != "" {
				t.Errorf("injected header %s: %q", h, v)
			}
		}
		for _, part := range []string{p.text, p.html} {
			for _, bad := range []string{"evil.example", "img", "locked", "Mozilla", "KHTML"} {
				if strings.Contains(part, bad) {
					t.Errorf("the mail shows the user agent's own words (%q):\n%s", bad, part)
				}
			}
			for _, want := range []string{"Windows PC", "Chrome", "Windows"} {
				if !strings.Contains(part, want) {
					t.Errorf("the mail lacks the parsed %q:\n%s", want, part)
				}
			}
		}
		if strings.Contains(p.text, "\nBcc:") || strings.Contains(p.text, "\nX-Injected") {
			t.Errorf("a CR/LF in the name started a line:\n%s", p.text)
		}
	}
}

// The README's notify email block adapts to the JSON it documents, and a
// config with it loads (the password from the environment).
func TestReadmeEmailExample(t *testing.T) {
	block := docBlock(t, "docs/configuration.md", "### Email notices", "caddyfile")
	t.Setenv("SMTP_PASSWORD", "from-the-environment")
	text := site("store memory\nbase_url https://app.example.com\n" + block)
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(strings.NewReplacer("{PORT}", "1", "{ADMIN}", "2", "{UPSTREAM}", "127.0.0.1:3").Replace(text)), map[string]any{"filename": "README.md"})
	if err != nil {
		t.Fatalf("the README's block: %v", err)
	}
	for _, want := range []string{`"notify_email":{`, `"smtp":"smtp.example.com:587"`, `"password":"{env.SMTP_PASSWORD}"`, `"tls":"starttls"`,
		`"events":["new_login","new_device","new_country","impossible_travel"]`} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("adapted JSON lacks %s: %s", want, cfg)
		}
	}
	g := loadCaddy(t, text, newUpstream(t))
	if res := newClient(t, g).do("GET", "/.auth/me"); res.StatusCode != 401 {
		t.Errorf("the README's config serves: %d", res.StatusCode)
	}
}
