package server

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/labstack/echo/v4"

	"github.com/authz/authz/storage"
)

// clientCache keeps client records between trust reloads: every token request looks its client
// up, and the record only changes through writes that bump the database generation, which the
// trust poll sees (trustPollInterval). Entries are immutable; reset swaps the whole map.
type clientCache struct {
	m atomic.Pointer[sync.Map]
}

func newClientCache() *clientCache {
	c := &clientCache{}
	c.reset()
	return c
}

func (c *clientCache) reset() { c.m.Store(&sync.Map{}) }

// get returns the client with the default audience added (see withAudience).
func (c *clientCache) get(ctx context.Context, store *storage.Store, id, audience string) (*storage.Client, error) {
	m := c.m.Load()
	if v, ok := m.Load(id); ok {
		return v.(*storage.Client), nil
	}
	rec, err := store.GetClientRecord(ctx, id)
	if err != nil {
		return nil, err
	}
	rec = withAudience(rec, audience)
	m.Store(id, rec)
	return rec, nil
}

// forgetClientsOnWrite empties the client cache after every admin request that may have written
// (anything but GET), so this replica applies its own changes at once; other replicas and the
// CLI are seen on the next trust poll.
func (s *Server) forgetClientsOnWrite(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		if c.Request().Method != http.MethodGet {
			s.clients.reset()
		}
		return err
	}
}
