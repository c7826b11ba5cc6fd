package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/primitives/capture"
	"github.com/containers-underneath/lab/primitives/simhost"
	"github.com/urfave/cli/v2"
)

// captureCommand is `lab LESSON capture`: tcpdump on a host of the
// lesson's world (a run paused at --step, else the kept shell's), a line a
// packet, and a pcap for Wireshark with -w.
func captureCommand(l *engine.Lesson) *cli.Command {
	return &cli.Command{
		Name:         "capture",
		Usage:        "show the packets crossing an interface of a simulated host, as tcpdump does (-w writes a pcap)",
		OnUsageError: usageError,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "host", Usage: "the host to capture on (default: the lesson's main host)"},
			&cli.StringFlag{Name: "iface", Value: "eth0", Usage: "the interface"},
			&cli.StringFlag{Name: "netns", Usage: "a namespace made on the host with `ip netns add` (default: the host's own)"},
			&cli.StringFlag{Name: "filter", Usage: "udp, tcp, icmp, arp, vxlan, port N, host ADDR, joined by and"},
			&cli.IntFlag{Name: "count", Aliases: []string{"c"}, Usage: "stop after N packets (default: Ctrl-C)"},
			&cli.StringFlag{Name: "write", Aliases: []string{"w"}, Usage: "also write the packets to this pcap file"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			if c.Int("count") < 0 {
				return engine.Usagef("--count %d: a number of packets, 1 or more", c.Int("count"))
			}
			if _, err := capture.ParseFilter(c.String("filter")); err != nil {
				return engine.Usagef("%v", err)
			}
			w, err := captureWorld(l)
			if err != nil {
				return err
			}
			name := c.String("host")
			if name == "" {
				name = l.Main
			}
			h, err := engine.HostOf(w, name)
			if err != nil {
				return err
			}
			o := capture.Options{Iface: c.String("iface"), Filter: c.String("filter"), Count: c.Int("count")}
			if p := c.String("write"); p != "" {
				f, err := os.Create(p)
				if err != nil {
					return engine.Usagef("cannot write %s: %v", p, err)
				}
				defer f.Close()
				o.Pcap = f
			}
			fmt.Fprintf(c.App.ErrWriter, "[root@%s ~]# %s\n", name, o.Tcpdump())
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			n, err := capture.Run(ctx, h, c.String("netns"), o, func(p capture.Packet) {
				fmt.Fprintf(c.App.Writer, "%s %s\n", p.Time.Format("15:04:05.000000"), p.Line)
			})
			fmt.Fprintf(c.App.ErrWriter, "%d packets captured\n", n)
			return err
		},
	}
}

// captureWorld is the lesson's world to look into: a run that is going
// (paused at --step, say), else the kept shell world.
func captureWorld(l *engine.Lesson) (*simhost.World, error) {
	all, err := simhost.List(l.Name)
	if err != nil {
		return nil, err
	}
	for _, id := range all[l.Name] {
		if id == engine.ShellID {
			continue
		}
		if w, err := simhost.Open(l.Name, id); err == nil && w.Alive() && w.OwnerAlive() {
			return w, nil
		}
	}
	return engine.OpenShellWorld(l)
}
