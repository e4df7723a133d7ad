package cloudlink_test

import (
	"net"
	"os"
	"os/exec"
	"testing"

	"github.com/mxedge/mxedge/cloudlink"
	"github.com/mxedge/mxedge/cloudlink/labcloud"
)

// TestProxyFromEnvironment checks HTTPS_PROXY is honoured when
// cloud.proxy_url is empty. net/http reads the environment once per
// process and never proxies loopback, so the registration runs in a child
// process and names the lab by labcloud.LabHost, which only the proxy
// can resolve (it tunnels everything to the lab).
func TestProxyFromEnvironment(t *testing.T) {
	if api := os.Getenv("CLOUDLINK_TEST_API"); api != "" {
		_, err := cloudlink.Register(ctxT(t), api, os.Getenv("CLOUDLINK_TEST_CODE"), t.TempDir(),
			cloudlink.RegisterOptions{CAFile: os.Getenv("CLOUDLINK_TEST_CA")})
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	l := mustLab(t)
	p, tunnels := connectProxy(t, l.srv.Listener.Addr().String())
	_, port, _ := net.SplitHostPort(l.srv.Listener.Addr().String())
	cmd := exec.CommandContext(ctxT(t), os.Args[0], "-test.run=^TestProxyFromEnvironment$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		"HTTPS_PROXY="+p.URL, "https_proxy="+p.URL, "NO_PROXY=", "no_proxy=",
		"CLOUDLINK_TEST_API=https://"+labcloud.LabHost+":"+port,
		"CLOUDLINK_TEST_CODE="+l.cloud.NewCode(),
		"CLOUDLINK_TEST_CA="+l.caFile(),
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if tunnels.Load() == 0 || l.cloud.Stats().Edges != 1 {
		t.Errorf("tunnels %d, edges %d; want the registration through the proxy", tunnels.Load(), l.cloud.Stats().Edges)
	}
}
