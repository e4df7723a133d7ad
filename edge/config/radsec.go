package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// RadSecListenerOff returns why the RadSec listener does not start, or ""
// when it does. It is off when radsec.listen is empty, and when the file
// leaves the whole radsec section at its defaults while a default
// certificate, key or CA file is missing: an install without device PKI
// still runs, and `mxedge check-config` and the daemon's log both say why
// nothing listens on 2083. A radsec section that the file does set is
// never off for this reason: its missing files fail the start instead.
func (c *Config) RadSecListenerOff() string {
	r := &c.RadSec
	if len(r.Listen) == 0 {
		return "radsec.listen is empty"
	}
	if c.IsLocal("radsec") {
		return ""
	}
	var missing []string
	for _, f := range []string{r.Cert, r.Key, r.ClientCA} {
		if _, err := os.Stat(f); errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, f)
		}
	}
	if len(missing) == 0 {
		return ""
	}
	return fmt.Sprintf("radsec: the RadSec listener for devices is off: %s missing; install them, or set radsec.listen: [] to silence this",
		strings.Join(missing, ", "))
}
