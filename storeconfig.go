package sessionauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// StoreConfig selects and configures the session store.
type StoreConfig struct {
	// file (default), memory or redis.
	Type string `json:"type,omitempty"`
	// The file store's file; default
	// <caddy.AppDataDir()>/session_auth/sessions.db.
	Path string `json:"path,omitempty"`
	// Redis URL: redis://, rediss:// (TLS) or unix://; may carry user,
	// password and db.
	URL string `json:"url,omitempty"`
	// Redis addresses; several mean Redis Cluster, or the sentinels
	// when master is set.
	Addresses []string `json:"addresses,omitempty"`
	// Redis Sentinel master name.
	Master   string `json:"master,omitempty"`
	Username string `json:"username,omitempty"`
	// Password; {env.*} placeholders are expanded at provision.
	Password string `json:"password,omitempty"`
	DB       int    `json:"db,omitempty"`
	// Prefix of every key. Default "sa:".
	KeyPrefix string `json:"key_prefix,omitempty"`
	PoolSize  int    `json:"pool_size,omitempty"`
	// Default 1s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`
	// Default 500ms; also the budget of one store operation. With the
	// file store: the deadline of a write (default 2s), after which the
	// request gets 503 (a stuck disk).
	ReadTimeout caddy.Duration `json:"read_timeout,omitempty"`
	// TLS to Redis (also turned on by a rediss:// URL): a PEM file of CA
	// certificates to trust instead of the system's, a client certificate
	// and key for mutual TLS, and the name to verify the server as.
	TLSCA         string `json:"tls_ca,omitempty"`
	TLSCert       string `json:"tls_cert,omitempty"`
	TLSKey        string `json:"tls_key,omitempty"`
	TLSServerName string `json:"tls_server_name,omitempty"`
}

// usesTLS: a rediss:// URL or any tls_* option.
func (c *StoreConfig) usesTLS() bool {
	return strings.HasPrefix(c.URL, "rediss://") || c.TLSCA != "" || c.TLSCert != "" || c.TLSServerName != ""
}

// describe names the store for log lines, where an operator needs the
// address: "memory", or the Redis URL without its credentials, or the
// addresses (with the Sentinel master).
func (c *StoreConfig) describe() string {
	switch c.Type {
	case "file":
		return "file " + c.filePath()
	case "redis":
	default:
		return c.Type
	}
	if c.URL != "" {
		if u, err := url.Parse(c.URL); err == nil {
			u.User = nil
			return u.Redacted()
		}
		return "redis (unparsable URL)"
	}
	d := "redis " + strings.Join(c.Addresses, ",")
	if c.Master != "" {
		d += " master " + c.Master
	}
	return d
}

// tlsConfig builds the client TLS config; it reads files but dials nothing.
func (c *StoreConfig) tlsConfig(base *tls.Config) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if base != nil {
		cfg = base.Clone()
		if cfg.MinVersion < tls.VersionTLS12 {
			cfg.MinVersion = tls.VersionTLS12
		}
	}
	if c.TLSCA != "" {
		pem, err := os.ReadFile(c.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("store redis tls_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("store redis tls_ca %s: no PEM certificate in it", c.TLSCA)
		}
		cfg.RootCAs = pool
	}
	if c.TLSCert != "" {
		pair, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("store redis tls_cert/tls_key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if c.TLSServerName != "" {
		cfg.ServerName = c.TLSServerName
	}
	return cfg, nil
}

const (
	defaultKeyPrefix   = "sa:"
	defaultDialTimeout = time.Second
	defaultReadTimeout = 500 * time.Millisecond
	// The file store's deadline for a write (read_timeout).
	defaultFileWriteTimeout = 2 * time.Second
)

func (c *StoreConfig) applyDefaults() {
	if c.Type == "" {
		c.Type = "file"
	}
	if c.Type != "redis" {
		if c.ReadTimeout == 0 {
			c.ReadTimeout = caddy.Duration(defaultReadTimeout)
			if c.Type == "file" {
				// A write's fsync on a busy disk takes hundreds of
				// milliseconds now and then: wait longer than for Redis.
				c.ReadTimeout = caddy.Duration(defaultFileWriteTimeout)
			}
		}
		return
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = defaultKeyPrefix
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = caddy.Duration(defaultDialTimeout)
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = caddy.Duration(defaultReadTimeout)
	}
}

func (c *StoreConfig) check() error {
	switch c.Type {
	case "memory", "file":
		if c.URL != "" || len(c.Addresses) > 0 || c.Master != "" || c.Password != "" || c.Username != "" {
			return fmt.Errorf("store %s takes no Redis settings", c.Type)
		}
		if c.Type == "memory" && c.Path != "" {
			return errors.New("store memory takes no path")
		}
		return nil
	case "redis":
		if c.Path != "" {
			return errors.New("store redis takes no path")
		}
	default:
		return fmt.Errorf("store %q must be file, memory or redis", c.Type)
	}
	if c.URL == "" && len(c.Addresses) == 0 {
		return errors.New("store redis needs a URL or addresses")
	}
	if c.URL != "" {
		u, err := url.Parse(c.URL)
		if err != nil {
			return fmt.Errorf("store redis URL: %s", redactURLError(err))
		}
		switch u.Scheme {
		case "redis", "rediss", "unix":
		default:
			return fmt.Errorf("store redis URL scheme %q must be redis, rediss or unix", u.Scheme)
		}
	}
	if c.Master != "" && len(c.Addresses) == 0 {
		return errors.New("store redis master needs the sentinel addresses")
	}
	if c.DB < 0 || c.PoolSize < 0 || c.DialTimeout < 0 || c.ReadTimeout < 0 {
		return errors.New("store redis db, pool_size and timeouts must not be negative")
	}
	if c.DB != 0 && len(c.Addresses) > 1 && c.Master == "" {
		return errors.New("store redis: a Redis Cluster has only db 0")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("store redis: tls_cert and tls_key go together")
	}
	if c.usesTLS() && strings.HasPrefix(c.URL, "redis://") {
		return errors.New("store redis: tls_* options need a rediss:// URL (or addresses), not redis://")
	}
	return nil
}

// redactURLError keeps a password in a URL out of error messages.
func redactURLError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return "invalid URL"
}

// embedded: the store lives in this process (file or memory), so an
// operation has no network to wait for.
func (c *StoreConfig) embedded() bool { return c.Type == "memory" || c.Type == "file" }

// filePath is the file store's file, absolute: the configured path or
// the default under Caddy's data directory.
func (c *StoreConfig) filePath() string {
	p := c.Path
	if p == "" {
		p = filepath.Join(caddy.AppDataDir(), "session_auth", "sessions.db")
	}
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	return p
}

// redisOptions turns the config into go-redis options. Timeouts are short
// and bound by the request's context, so a hanging Redis costs a request
// read_timeout at most, never a pile-up.
func (c *StoreConfig) redisOptions(password string) (*redis.UniversalOptions, error) {
	opts := &redis.UniversalOptions{
		Addrs:                 c.Addresses,
		MasterName:            c.Master,
		DB:                    c.DB,
		PoolSize:              c.PoolSize,
		DialTimeout:           time.Duration(c.DialTimeout),
		ReadTimeout:           time.Duration(c.ReadTimeout),
		WriteTimeout:          time.Duration(c.ReadTimeout),
		ContextTimeoutEnabled: true,
		DisableIdentity:       true,
		MaxRetries:            1,
		// Cluster: a resharding answers TRYAGAIN while a user's keys are
		// split between two nodes; go-redis backs off and retries, and the
		// request's deadline (read_timeout) still bounds the whole.
		MaxRedirects: 8,
	}
	if c.URL != "" {
		u, err := redis.ParseURL(c.URL)
		if err != nil {
			return nil, fmt.Errorf("store redis URL: %s", redactURLError(err))
		}
		if len(opts.Addrs) == 0 {
			opts.Addrs = []string{u.Addr}
		}
		if u.Network == "unix" {
			// UniversalOptions has no network field: dial the socket ourselves.
			opts.Addrs = []string{u.Addr}
			opts.Dialer = func(ctx context.Context, _, addr string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", addr)
			}
		}
		opts.Username, opts.Password, opts.TLSConfig = u.Username, u.Password, u.TLSConfig
		if c.DB == 0 {
			opts.DB = u.DB
		}
	}
	if c.Username != "" {
		opts.Username = c.Username
	}
	if password != "" {
		opts.Password = password
	}
	if c.usesTLS() {
		cfg, err := c.tlsConfig(opts.TLSConfig)
		if err != nil {
			return nil, err
		}
		opts.TLSConfig = cfg
	}
	return opts, nil
}

// evictionCheck reads Redis's eviction policy once the store has made its
// first connection (Provision dials nothing), in the background, and logs
// an error unless it is noeviction. Every key the gateway writes has a
// TTL, so the volatile-* policies may evict any of them too, and an
// evicted user index would hide that user's sessions from every
// revocation (they are refused instead: see session.Unlisted).
type evictionCheck struct {
	once   sync.Once
	ready  chan struct{} // closed once client is set
	client redis.UniversalClient
	logger *zap.Logger
}

func (e *evictionCheck) onConnect(context.Context, *redis.Conn) error {
	e.once.Do(func() { go e.run() })
	return nil
}

func (e *evictionCheck) run() {
	<-e.ready
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	check := func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "memory").Result()
		if err != nil {
			return err
		}
		policy := infoField(info, "maxmemory_policy")
		if policy == "noeviction" {
			e.logger.Debug("Redis evicts no keys (maxmemory-policy noeviction)", zap.String("address", c.Options().Addr))
			return nil
		}
		e.logger.Error("Redis may evict the gateway's keys: set maxmemory-policy noeviction "+
			"(sessions whose user index is evicted are refused, and other evicted keys sign users out)",
			zap.String("address", c.Options().Addr), zap.String("maxmemory_policy", policy),
			zap.String("maxmemory", infoField(info, "maxmemory_human")))
		return nil
	}
	var err error
	switch c := e.client.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, check)
	case *redis.Client:
		err = check(ctx, c)
	}
	if err != nil {
		e.logger.Warn("could not read Redis's eviction policy, which must be noeviction (the ACL user needs +info)", zap.Error(err))
	}
}

// infoField finds "name:value" in an INFO reply.
func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}
