// Package config is the operator's configuration of mxedge: the YAML file
// (default /etc/mxedge/config.yaml) plus MXEDGE_* environment overrides,
// decoded strictly into typed fields and validated as a whole.
//
// Key names are the ones in the design's CONFIG.md, because operators,
// scripts and docs quote them. Decoding is strict, since a misspelt key
// (`sercet:`) silently falling back to a default is how RADIUS outages start;
// and every problem is reported at once as "FILE: KEY: reason" so that
// `mxedge check-config` can show the operator the whole list in one run.
//
// Any scalar or string-list key can be overridden from the environment as
// MXEDGE_ plus the key upper-cased with dots turned into underscores
// (MXEDGE_LOG_LEVEL=debug, MXEDGE_RADIUS_AUTH_LISTEN=127.0.0.1:1812,[::1]:1812).
// Keys inside lists (radius.clients, federation) have no override.
//
// Keys beyond CONFIG.md: radius.duplicate_window, radius.clients[].limit_proxy_state,
// cloud.radsec.idle_timeout and cloud.radsec.status_interval; config.example.yaml
// at the repository root documents every key with its default.
//
// Shared secrets are of type Secret, which never prints, logs or marshals its
// value; only Reveal gives it out.
package config
