package edge

import (
	"log/slog"

	"github.com/mxedge/mxedge/cache"
)

// cacheOptional says whether the edge starts without its cache after err
// from openCache: a cache fault never stops cloud proxying. Only a file
// locked by another process stops the start: that is a second mxedge on
// the same state_dir, which must not run alongside the first.
func cacheOptional(err error) bool { return !cache.IsLocked(err) }

// logCacheFault reports a move-aside loudly: the cache starts empty and
// refills from the cloud's next sync (a full one: the new file has no
// cursor); events and held accounting are salvaged from the moved file.
func logCacheFault(log *slog.Logger, f cache.Fault) {
	log.Error("client cache file damaged: moved aside, cache restarted empty; it refills from the cloud, pending events and held accounting are salvaged from the moved file (see `mxedge cache recover`)",
		"reason", f.Reason, "moved_to", f.MovedTo, "err", f.Err)
}
