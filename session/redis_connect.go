package session

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// ErrClosed: the store was closed (its Redis client) while an operation
// waited; retrying cannot help.
var ErrClosed = redis.ErrClosed

// RedisOptions is how a Redis store connects: a URL (redis://, rediss://,
// unix://) or addresses (several: a Cluster; with Master: Sentinels),
// credentials, TLS from files, and the short timeouts that keep a hanging
// Redis from costing a request more than ReadTimeout.
type RedisOptions struct {
	URL       string
	Addresses []string
	Master    string
	Username  string
	Password  string
	DB        int
	PoolSize  int
	Prefix    string

	DialTimeout time.Duration
	ReadTimeout time.Duration

	TLSCA, TLSCert, TLSKey, TLSServerName string

	// Logger hears the eviction check's verdict (see evictionCheck).
	Logger *zap.Logger
}

// UsesTLS: a rediss:// URL or any TLS option.
func (o RedisOptions) UsesTLS() bool {
	return strings.HasPrefix(o.URL, "rediss://") || o.TLSCA != "" || o.TLSCert != "" || o.TLSServerName != ""
}

// DialRedis returns a Redis store on a client of its own, which Close
// closes. It dials nothing: the first operation does, and the eviction
// check reads Redis's policy once connected.
func DialRedis(o RedisOptions, now func() time.Time) (*Redis, error) {
	opts, err := o.universal()
	if err != nil {
		return nil, err
	}
	logger := o.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	ev := &evictionCheck{logger: logger, ready: make(chan struct{})}
	opts.OnConnect = ev.onConnect
	client := redis.NewUniversalClient(opts)
	ev.client = client
	close(ev.ready)
	r := NewRedis(client, o.Prefix, now)
	r.ownsClient = true
	return r, nil
}

// universal turns the options into go-redis's.
func (o RedisOptions) universal() (*redis.UniversalOptions, error) {
	opts := &redis.UniversalOptions{
		Addrs:                 o.Addresses,
		MasterName:            o.Master,
		DB:                    o.DB,
		PoolSize:              o.PoolSize,
		DialTimeout:           o.DialTimeout,
		ReadTimeout:           o.ReadTimeout,
		WriteTimeout:          o.ReadTimeout,
		ContextTimeoutEnabled: true,
		DisableIdentity:       true,
		MaxRetries:            1,
		// Cluster: a resharding answers TRYAGAIN while a user's keys are
		// split between two nodes; go-redis backs off and retries, and the
		// request's deadline (read_timeout) still bounds the whole.
		MaxRedirects: 8,
	}
	if o.URL != "" {
		u, err := redis.ParseURL(o.URL)
		if err != nil {
			return nil, fmt.Errorf("store redis URL: %s", RedactURLError(err))
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
		if o.DB == 0 {
			opts.DB = u.DB
		}
	}
	if o.Username != "" {
		opts.Username = o.Username
	}
	if o.Password != "" {
		opts.Password = o.Password
	}
	if o.UsesTLS() {
		cfg, err := o.tlsConfig(opts.TLSConfig)
		if err != nil {
			return nil, err
		}
		opts.TLSConfig = cfg
	}
	return opts, nil
}

// tlsConfig builds the client TLS config; it reads files but dials nothing.
func (o RedisOptions) tlsConfig(base *tls.Config) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if base != nil {
		cfg = base.Clone()
		if cfg.MinVersion < tls.VersionTLS12 {
			cfg.MinVersion = tls.VersionTLS12
		}
	}
	if o.TLSCA != "" {
		pem, err := os.ReadFile(o.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("store redis tls_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("store redis tls_ca %s: no PEM certificate in it", o.TLSCA)
		}
		cfg.RootCAs = pool
	}
	if o.TLSCert != "" {
		pair, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("store redis tls_cert/tls_key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if o.TLSServerName != "" {
		cfg.ServerName = o.TLSServerName
	}
	return cfg, nil
}

// RedisAddress is the network and address a Redis URL names.
func RedisAddress(raw string) (network, addr string, err error) {
	opts, err := redis.ParseURL(raw)
	if err != nil {
		return "", "", errors.New(RedactURLError(err))
	}
	return opts.Network, opts.Addr, nil
}

// RedactURLError keeps a password in a URL out of error messages.
func RedactURLError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return "invalid URL"
}

// Ping asks Redis for an answer: the start-up reachability check.
func (r *Redis) Ping(ctx context.Context) error { return r.client.Ping(ctx).Err() }
