// Command coredns is CoreDNS (github.com/coredns/coredns, pinned in go.mod)
// with only the plugins the local cluster's DNS uses: the upstream binary
// links every plugin (the cloud providers' SDKs among them), which would
// triple the build for nothing. The pods' network has no route off this
// machine, so there is no `forward` plugin: names outside cluster.local are
// not resolved.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

func init() {
	// The order in which a query passes the plugins: upstream's plugin.cfg
	// order, restricted to the plugins linked above.
	dnsserver.Directives = []string{
		"reload", "ready", "health", "errors", "log", "loadbalance", "cache", "kubernetes",
	}
}

func main() { coremain.Run() }
