// Command drover-agent is drover's install agent. drover's install initrd
// runs it as the machine's first process after the kernel; it reads what to
// do from the kernel command line (drover.url, drover.token, drover.name,
// BOOTIF), flags override it. See docs/install.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/drover/drover/internal/agent"
)

func main() {
	args := cmdline("/proc/cmdline")
	cfg := agent.Config{}
	flag.StringVar(&cfg.Server, "server", args["drover.url"], "drover's machine HTTP URL")
	flag.StringVar(&cfg.Token, "token", args["drover.token"], "the install token")
	flag.StringVar(&cfg.Name, "name", args["drover.name"], "the machine's slot name")
	flag.StringVar(&cfg.BootMAC, "boot-mac", bootMAC(args["BOOTIF"]), "MAC of the NIC to bring up by DHCP")
	flag.DurationVar(&cfg.LLDPWait, "lldp-wait", 35*time.Second, "how long to listen for LLDP neighbours")
	reboot := flag.Bool("reboot", true, "reboot into the installed system when done")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("agent", "drover", "machine", cfg.Name)
	cfg.Log = log
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if args["drover.mode"] == "discover" || cfg.Token == "" {
		log.Info("discovery mode: this machine is not in a slot of the design; nothing to install")
		<-ctx.Done()
		return
	}
	if err := agent.Run(ctx, cfg); err != nil {
		// Stay up with the reason on the console: rebooting would only
		// bring the firmware back to a disk that must not boot.
		fmt.Fprintf(os.Stderr, "drover-agent: install failed: %v\n", err)
		<-ctx.Done()
		os.Exit(1)
	}
	if *reboot {
		unix.Sync()
		log.Info("rebooting into the installed system")
		if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
			log.Error("reboot", "err", err)
			os.Exit(1)
		}
	}
}

// cmdline reads key=value words of the kernel command line.
func cmdline(path string) map[string]string {
	out := map[string]string{}
	b, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	for _, w := range strings.Fields(string(b)) {
		if k, v, ok := strings.Cut(w, "="); ok {
			out[k] = v
		}
	}
	return out
}

// bootMAC reads pxelinux's BOOTIF=01-aa-bb-cc-dd-ee-ff (or a plain MAC).
func bootMAC(s string) string {
	if len(s) == 20 && strings.HasPrefix(s, "01-") {
		s = s[3:]
	}
	return strings.ReplaceAll(s, "-", ":")
}
