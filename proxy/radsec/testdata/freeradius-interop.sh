#!/bin/sh
# Starts a private FreeRADIUS 3.x RadSec server on 127.0.0.1:20830 for
# TestInteropFreeRADIUS, from a copy of /etc/freeradius/3.0 (the system
# service is not touched). Prints the env for the test and the PID to stop.
#   sh testdata/freeradius-interop.sh /tmp/radsec-fr
#   MXEDGE_RADSEC_INTEROP=127.0.0.1:20830 MXEDGE_RADSEC_PKI=/tmp/radsec-fr/pki go test -run Interop -v .
set -eu
D=${1:-/tmp/radsec-fr}
rm -rf "$D"; mkdir -p "$D/pki" "$D/log/radacct" "$D/run"
cp -rL /etc/freeradius/3.0 "$D/conf"
cd "$D/pki"
openssl ecparam -name prime256v1 -genkey -noout -out ca.key
openssl req -x509 -new -key ca.key -subj "/CN=interop CA" -days 2 -out ca.pem
for n in server client; do
	openssl ecparam -name prime256v1 -genkey -noout -out $n.key
	openssl req -new -key $n.key -subj "/CN=$n" -out $n.csr
	if [ $n = server ]; then eku=serverAuth; else eku=clientAuth; fi
	printf "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=%s\n" $eku > $n.ext
	openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile $n.ext -out $n.pem 2>/dev/null
done
cd "$D/conf"
rm -f sites-enabled/*
cat > sites-enabled/radsec <<EOT
listen {
	ipaddr = 127.0.0.1
	port = 20830
	type = auth+acct
	proto = tcp
	virtual_server = default
	clients = radsec
	limit {
		max_connections = 16
		lifetime = 0
		idle_timeout = 5
	}
	tls {
		private_key_file = $D/pki/server.key
		certificate_file = $D/pki/server.pem
		ca_file = $D/pki/ca.pem
		tls_min_version = "1.2"
		tls_max_version = "1.3"
		require_client_cert = yes
		cache { enable = no }
		verify { }
	}
}
clients radsec {
	client 127.0.0.1 {
		ipaddr = 127.0.0.1
		proto = tls
		secret = radsec
	}
}
EOT
# The default virtual server without its UDP listen sections.
python3 - "$D/conf/sites-available/default" "$D/conf/sites-enabled/default" <<'PY'
import re, sys
s = open(sys.argv[1]).read()
out, i = [], 0
while True:
    m = re.search(r'^listen \{', s[i:], re.M)
    if not m:
        out.append(s[i:]); break
    st = i + m.start(); out.append(s[i:st]); depth, j = 0, st
    while True:
        depth += {'{': 1, '}': -1}.get(s[j], 0)
        if s[j] == '}' and depth == 0: break
        j += 1
    i = j + 1
open(sys.argv[2], 'w').write(''.join(out))
PY
sed -i "s#^logdir = .*#logdir = $D/log#; s#^run_dir = .*#run_dir = $D/run#; s#^radacctdir = .*#radacctdir = $D/log/radacct#; s#^\s*user = freerad#\t\#user = freerad#; s#^\s*group = freerad#\t\#group = freerad#" radiusd.conf
{ printf 'alice Cleartext-Password := "pw-alice"\n\tReply-Message := "hello alice"\n'; cat mods-config/files/authorize; } > authorize.new
mv authorize.new mods-config/files/authorize
freeradius -fxx -l stdout -d "$D/conf" > "$D/fr.log" 2>&1 &
echo $! > "$D/fr.pid"
echo "freeradius pid $(cat "$D/fr.pid"), log $D/fr.log"
echo "MXEDGE_RADSEC_INTEROP=127.0.0.1:20830 MXEDGE_RADSEC_PKI=$D/pki"
