// Package packaging holds what turns mxedge into a Debian package and an
// operated service: the nfpm config, maintainer scripts, the Debian
// changelog generator, make rules (deb.mk) and the Grafana dashboard. The
// systemd unit, sysusers and tmpfiles snippets live in ../systemd.
//
// There is no Go API here. The package exists for its tests, which build the
// .deb files with the same make rules as `make deb` and check them with
// Debian's own tools (dpkg-deb, lintian, dpkg --root, systemd-analyze), so a
// packaging mistake fails CI instead of an operator's upgrade.
package packaging
