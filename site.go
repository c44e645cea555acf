package sessionauth

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// checkBaseURL accepts an absolute http(s) URL with a host and no query
// or fragment: links are built by appending the endpoints' paths to it.
func checkBaseURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil || u.Opaque != "" {
		return fmt.Errorf("base_url %q must be an http:// or https:// URL with a host and no query", s)
	}
	return nil
}

// checkPasswordURL: a same-site path or an http(s) URL, nothing a
// browser would run or read as another host.
func checkPasswordURL(s string) error {
	if s == "" || (strings.HasPrefix(s, "/") && safeNext(s) == s) {
		return nil
	}
	if err := checkBaseURL(s); err != nil {
		return fmt.Errorf("password_url %q must be a path on the site (/account/password) or an http:// or https:// URL", s)
	}
	return nil
}

// passwordLink is where a "Not you?" page sends the user to change their
// password: password_url, a path joined to base_url when set; empty when
// none is configured.
func (h *Handler) passwordLink() string {
	if strings.HasPrefix(h.PasswordURL, "/") {
		return h.BaseURL + h.PasswordURL
	}
	return h.PasswordURL
}

// learnSite reads, from the server this handler is provisioned in, what
// the handler cannot learn from its own config: whether the site serves
// HTTPS at all (a SameSite=None cookie without Secure is dropped by
// browsers) and which Hosts its matchers accept (a link is never built on
// a Host that none of them accepted). Outside a server (unit tests,
// another app embedding the handler) there is nothing to learn.
func (h *Handler) learnSite(ctx caddy.Context) error {
	h.BaseURL = strings.TrimSuffix(h.BaseURL, "/")
	h.hosts = nil
	srv, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if !ok || srv == nil {
		return nil
	}
	h.siteTLS = len(srv.TLSConnPolicies) > 0
	h.rules = &pathRules{srv: srv}
	var named []caddyhttp.MatchHost // all of them, wildcards too: how the operator names the site
	defer func() { h.site = siteName(h.siteTLS, named, srv.Listen) }()
	catchAll, wildcard := len(srv.Routes) == 0, false
	for _, route := range srv.Routes {
		hasHost := false
		for _, set := range route.MatcherSets {
			for _, m := range set {
				if mh, ok := m.(*caddyhttp.MatchHost); ok {
					named = append(named, *mh)
					exact, fuzzy := exactHosts(*mh)
					if len(exact) > 0 {
						h.hosts = append(h.hosts, exact)
					}
					wildcard = wildcard || fuzzy
					hasHost = true
				}
			}
		}
		catchAll = catchAll || !hasHost
	}
	// After the loop: the log line of the refusal names the site.
	if h.Cookie.SameSite == "none" && h.Cookie.Secure == "auto" && len(srv.TLSConnPolicies) == 0 {
		return errors.New("cookie same_site none needs a Secure cookie, and this site is plain HTTP " +
			"(browsers drop SameSite=None without Secure): use same_site lax or strict, or " +
			"secure always when TLS ends at a proxy in front of Caddy")
	}
	if (catchAll || wildcard) && h.BaseURL == "" && (h.Notify != nil || h.NotifyEmail != nil) {
		h.logger.Warn("this server has a site without a host matcher, or with a wildcard one, and base_url is not set: " +
			"notification links are left out for requests whose Host no exact host matcher names; " +
			"set base_url to the site's public URL")
	}
	return nil
}

// exactHosts keeps the hosts of a host matcher that name one host. A
// wildcard (*.example.com) or a placeholder accepts Hosts the client
// chooses (any subdomain, someone else's among them): a link is never
// built on one, as with no host matcher. The matcher is provisioned, so
// a large one is sorted and stays sorted without its fuzzy entries.
func exactHosts(mh caddyhttp.MatchHost) (exact caddyhttp.MatchHost, fuzzy bool) {
	for _, host := range mh {
		if strings.ContainsAny(host, "*{") {
			fuzzy = true
			continue
		}
		exact = append(exact, host)
	}
	return exact, fuzzy
}

// siteName is how the admin API names a server to the operator:
// scheme://host:port, with the first host the matchers name ("*" when
// none does) and the first listen port.
func siteName(tls bool, hosts []caddyhttp.MatchHost, listen []string) string {
	scheme, host, port := "http", "*", ""
	if tls {
		scheme = "https"
	}
	for _, mh := range hosts {
		if len(mh) > 0 {
			host = mh[0]
			break
		}
	}
	if len(listen) > 0 {
		if addr, err := caddy.ParseNetworkAddress(listen[0]); err == nil {
			port = ":" + strconv.FormatUint(uint64(addr.StartPort), 10)
		}
	}
	return scheme + "://" + host + port
}

// linkBase is the scheme and host (and path prefix) links to this site
// start with: base_url, or the request's own when a host matcher of the
// server accepted its Host; "" when there is none to trust.
func (h *Handler) linkBase(r *http.Request) string {
	if h.BaseURL != "" {
		return h.BaseURL
	}
	if !validHost.MatchString(r.Host) || !h.hostMatched(r) {
		if c := h.logger.Check(zap.WarnLevel, "link left out: the request's Host was not accepted by a host matcher; set base_url"); c != nil {
			c.Write(zap.String("host", sanitise(r.Host, 256)))
		}
		return ""
	}
	return requestScheme(r) + "://" + r.Host
}

// hostMatched reports whether one of the server's host matchers accepts
// r's Host: then the Host is one the operator named, not the client's
// invention.
func (h *Handler) hostMatched(r *http.Request) bool {
	if _, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); !ok {
		return false // the matchers need one; a request outside Caddy has none
	}
	for _, mh := range h.hosts {
		if ok, err := mh.MatchWithError(r); ok && err == nil {
			return true
		}
	}
	return false
}
