package bridgenat

import (
	"fmt"
	"net"

	"github.com/containers-underneath/lab/labs/cli"
	"github.com/containers-underneath/lab/primitives/httpd"
	ucli "github.com/urfave/cli/v2"
)

// The lesson's commands that have no iproute2 spelling: the web server in
// c1 (nginx in the documents) and dockerd's choice of a host port for -P.
// Both run wherever they are started, so `ip netns exec c1 lab tool httpd`
// serves inside c1, and a dry-run script can do what the lesson does.
func init() { cli.Tool(httpdCommand(), freePortCommand()) }

func httpdCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "httpd",
		Usage: "a small web server that says where each request landed (run it in a container's namespace)",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "listen", Value: ":80", Usage: "address to listen on"},
			&ucli.BoolFlag{Name: "detach", Usage: "run in the background; return once it listens"},
		},
		Action: func(c *ucli.Context) error {
			addr := c.String("listen")
			if c.Bool("detach") {
				if _, err := httpd.Detach(addr); err != nil {
					return err
				}
				fmt.Fprintln(c.App.Writer, httpd.Banner(addr))
				return nil
			}
			l, err := net.Listen("tcp4", addr)
			if err != nil {
				return fmt.Errorf("failed to listen on %s: %w", addr, err)
			}
			fmt.Fprintln(c.App.Writer, httpd.Banner(addr))
			return httpd.Serve(l)
		},
	}
}

func freePortCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "free-port",
		Usage: "print the host port `docker run -P` would pick here",
		Action: func(c *ucli.Context) error {
			p, err := FreePort("/proc/self/ns/net")
			if err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, p)
			return nil
		},
	}
}
