package sessionauth

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/session"
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
			return fmt.Errorf("store redis URL: %s", session.RedactURLError(err))
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

// redisOptions is the config as the Redis store takes it.
func (c *StoreConfig) redisOptions(password string, logger *zap.Logger) session.RedisOptions {
	return session.RedisOptions{
		URL: c.URL, Addresses: c.Addresses, Master: c.Master, Username: c.Username, Password: password,
		DB: c.DB, PoolSize: c.PoolSize, Prefix: c.KeyPrefix,
		DialTimeout: time.Duration(c.DialTimeout), ReadTimeout: time.Duration(c.ReadTimeout),
		TLSCA: c.TLSCA, TLSCert: c.TLSCert, TLSKey: c.TLSKey, TLSServerName: c.TLSServerName,
		Logger: logger,
	}
}
