package sessionauth

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// The gateway's own secret keys what a copy of the store must not let
// anyone forge or predict: the "Not you?" links and which dummy hash an
// unknown account name is compared with. It is never in the store: it is
// link_secret when given (several gateways share it), else a random key
// in Caddy's data directory, made on first start.
const (
	linkKeyFile      = "link.key"
	minLinkSecretLen = 16
)

// linkKeyPath is where the default key lives, beside the file store's
// default database.
func linkKeyPath() string {
	return filepath.Join(caddy.AppDataDir(), "session_auth", linkKeyFile)
}

// provisionSecret sets linkKey and nameKey from link_secret or the key
// file. A data directory that cannot be written costs the links their
// life across restarts, not the start: the key is then this process's.
func (h *Handler) provisionSecret() error {
	var secret []byte
	if h.LinkSecret != "" {
		s := caddy.NewReplacer().ReplaceAll(h.LinkSecret, "")
		if len(s) < minLinkSecretLen {
			return fmt.Errorf("link_secret must be at least %d characters (is its {env.*} variable set?)", minLinkSecretLen)
		}
		secret = []byte(s)
	} else {
		var err error
		if secret, err = loadOrMakeKey(linkKeyPath()); err != nil {
			secret = make([]byte, 32)
			_, _ = rand.Read(secret)
			h.logger.Warn("no link_secret and no key file: \"Not you?\" links work until this process stops",
				zap.String("path", linkKeyPath()), zap.Error(err))
		}
		if h.Store != nil && h.Store.Type == "redis" && (h.Notify != nil || h.NotifyEmail != nil) {
			h.logger.Warn("store redis without link_secret: a \"Not you?\" link works only on the gateway whose data directory "+
				"made it; give every gateway the same link_secret", zap.String("key_file", linkKeyPath()))
		}
	}
	var err error
	if h.linkKey, err = hkdf.Key(sha256.New, secret, nil, "session_auth revoke links", 32); err != nil {
		return err
	}
	h.nameKey, err = hkdf.Key(sha256.New, secret, nil, "session_auth unknown account names", 32)
	return err
}

// loadOrMakeKey reads the hex key at path, or makes one there (0600, in
// a 0700 directory). Of two processes making it at once, one writes and
// both read what it wrote.
func loadOrMakeKey(path string) ([]byte, error) {
	if key, err := readKey(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	tmp, err := os.CreateTemp(filepath.Dir(path), linkKeyFile+".*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(hex.EncodeToString(b[:]) + "\n"); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	// A hard link fails when the file exists: the first writer wins.
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	return readKey(path)
}

func readKey(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(key) < minLinkSecretLen {
		return nil, fmt.Errorf("%s is not a key this gateway wrote (delete it to make a new one)", path)
	}
	return key, nil
}

// linkToken authorises the "Not you?" link of one session: an HMAC of its
// id under the gateway's link key, which the store does not hold, so a
// copy of the store forges none. It dies with the session.
func (h *Handler) linkToken(s *session.Session) string {
	mac := hmac.New(sha256.New, h.linkKey)
	mac.Write([]byte("revoke:" + s.ID))
	return s.ID + "." + hex.EncodeToString(mac.Sum(nil))[:32]
}
