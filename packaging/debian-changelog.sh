#!/bin/sh
# debian-changelog.sh VERSION MAINTAINER [CHANGELOG.md]
# Writes a Debian changelog (deb-changelog(5)) for a native package to stdout:
# one entry for VERSION whose bullets come from CHANGELOG.md (Keep a
# Changelog format): the "## [VERSION]" section if there is one, else the
# first "## " section (Unreleased). Multi-line bullets are joined and
# rewrapped. The date is SOURCE_DATE_EPOCH, else the last commit's, else now,
# so rebuilding a commit gives the same bytes.
set -eu

version=$1
maintainer=$2
md=${3:-}

if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
	epoch=$SOURCE_DATE_EPOCH
elif epoch=$(git log -1 --format=%ct 2>/dev/null) && [ -n "$epoch" ]; then
	:
else
	epoch=$(date +%s)
fi
date=$(LC_ALL=C date -u -R -d "@$epoch")

bullets=
if [ -n "$md" ] && [ -f "$md" ]; then
	bullets=$(awk -v want="## [$version]" '
		function flush(   n, i, w, line) {
			if (item == "") return
			n = split(item, w, " ")
			line = "  *"
			for (i = 1; i <= n; i++) {
				if (length(line) + 1 + length(w[i]) > 78 && line != "  *" && line != "   ") {
					print line
					line = "   "
				}
				line = line " " w[i]
			}
			print line
			item = ""
		}
		# First pass over the file: does it have a section for this version?
		FNR == NR { if (index($0, want) == 1) has = 1; next }
		/^## / {
			if (in_section) { flush(); exit }
			in_section = has ? index($0, want) == 1 : 1
			next
		}
		!in_section { next }
		/^[-*] / { flush(); item = substr($0, 3); next }
		/^[ \t]+[^ \t]/ && item != "" { item = item " " $0; next }
		{ flush() }
		END { flush() }
	' "$md" "$md")
fi
if [ -z "$bullets" ]; then
	bullets="  * Release $version."
fi

printf 'mxedge (%s) unstable; urgency=medium\n\n%s\n\n -- %s  %s\n' \
	"$version" "$bullets" "$maintainer" "$date"
