package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"

	"github.com/authz/authz/config"
	"github.com/authz/authz/server"
	"github.com/authz/authz/storage"
)

// ServeProfiled runs one authz server exactly as `authz serve --config cfgPath` does (load the
// configuration, open and migrate the database, server.New, Serve until ctx ends), with a CPU
// profile of the whole process written to cpuProfile and, when memProfile is set, an allocation
// profile written at exit. `authz-bench --cpuprofile DIR` runs its servers this way, so the
// profile holds the server alone, not the load generator.
func ServeProfiled(ctx context.Context, cfgPath, cpuProfile, memProfile string, log *slog.Logger) (err error) {
	cfg, err := config.Load(cfgPath, os.Environ())
	if err != nil {
		return err
	}
	if log == nil {
		var level slog.Level
		_ = level.UnmarshalText([]byte(cfg.Log.Level))
		log = slog.New(server.ContextHandler{Handler: slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})})
	}
	st, err := storage.Open(ctx, storage.Options{Driver: cfg.Database.Driver, DSN: cfg.Database.DSN, Logger: log})
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate database: %w", err)
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			err = errors.Join(err, f.Close())
		}()
	}
	if memProfile != "" {
		runtime.MemProfileRate = 64 << 10
		defer func() {
			f, ferr := os.Create(memProfile)
			if ferr != nil {
				err = errors.Join(err, ferr)
				return
			}
			err = errors.Join(err, pprof.Lookup("allocs").WriteTo(f, 0), f.Close())
		}()
	}
	return server.Run(ctx, cfg, st, log)
}
