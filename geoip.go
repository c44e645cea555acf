package sessionauth

import (
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/geo"
)

// geoPool shares one database per file across handlers and config
// reloads; each follows its file for replacements.
var geoPool = caddy.NewUsagePool()

// geoCheckEvery is how often the database file is checked for a
// replacement: a stat call, cheap enough to do often.
const geoCheckEvery = 2 * time.Second

type pooledGeo struct{ *geo.DB }

func (p pooledGeo) Destruct() error { return p.DB.Close() }

// loadGeo opens (or shares) the database at path. A missing or corrupt
// file is a provision error.
func loadGeo(path string, logger *zap.Logger) (*geo.DB, error) {
	v, _, err := geoPool.LoadOrNew(path, func() (caddy.Destructor, error) {
		db, err := geo.Open(path, geoCheckEvery, logger.Named("geoip"))
		if err != nil {
			return nil, err
		}
		return pooledGeo{db}, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(pooledGeo).DB, nil
}
