package power

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/chassis"
	"github.com/bougou/go-ipmi/pkg/types"
)

// IPMI is the driver for IPMI 2.0 over LAN (RMCP+), built on
// github.com/bougou/go-ipmi (native Go; it does not run ipmitool).
type IPMI struct {
	// Timeout bounds each UDP exchange (default 2s). The Controller retries;
	// the library does not.
	Timeout time.Duration
}

// Open logs in to the BMC with an RMCP+ session at operator privilege.
func (d IPMI) Open(ctx context.Context, e Endpoint) (BMC, error) {
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	c, err := client.NewClient(e.Addr.Addr().String(), int(e.Addr.Port()), e.Credentials.Username, e.Credentials.Password)
	if err != nil {
		return nil, fmt.Errorf("ipmi %s: %w", e.Addr, err)
	}
	// Suite 17 (SHA-256) first, then 3 (SHA-1, what most BMCs offer).
	c.WithTimeout(timeout).WithRetry(0).
		WithCipherSuiteID(types.CipherSuiteID17, types.CipherSuiteID3).
		WithMaxPrivilegeLevel(types.PrivilegeLevelOperator)
	if err := c.Connect(ctx); err != nil {
		return nil, fmt.Errorf("ipmi %s: log in as %s: %w", e.Addr, e.Credentials.Username, classify(err))
	}
	return &ipmiBMC{c: c, addr: e.Addr.String()}, nil
}

// classify maps the library's errors onto ErrAuth and ErrUnreachable.
func classify(err error) error {
	msg := err.Error()
	var ne net.Error
	switch {
	case strings.Contains(msg, "RAKP") || strings.Contains(msg, "authentication") || strings.Contains(msg, "unauthorized") ||
		strings.Contains(msg, "Invalid user") || strings.Contains(msg, "privilege"):
		return fmt.Errorf("%w (%v)", ErrAuth, firstLine(msg))
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, context.DeadlineExceeded), strings.Contains(msg, "timeout"), strings.Contains(msg, "connection refused"),
		strings.Contains(msg, "i/o timeout"), strings.Contains(msg, "no route to host"), strings.Contains(msg, "deadline"):
		return fmt.Errorf("%w (%v)", ErrUnreachable, firstLine(msg))
	}
	return errors.New(firstLine(msg))
}

// firstLine keeps errors one line: the library lists every cipher suite tried.
func firstLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if i := strings.LastIndex(last, "err: "); i >= 0 {
		last = last[i+5:]
	}
	return last
}

type ipmiBMC struct {
	c    *client.Client
	addr string
}

func (b *ipmiBMC) control(ctx context.Context, what string, c chassis.ChassisControl) error {
	if _, err := b.c.ChassisControl(ctx, c); err != nil {
		return fmt.Errorf("ipmi %s: %s: %w", b.addr, what, classify(err))
	}
	return nil
}

func (b *ipmiBMC) On(ctx context.Context) error {
	return b.control(ctx, "power on", chassis.ChassisControlPowerUp)
}

func (b *ipmiBMC) Off(ctx context.Context) error {
	return b.control(ctx, "power off", chassis.ChassisControlPowerDown)
}

// Cycle: IPMI's power cycle is only defined for a machine that is on.
func (b *ipmiBMC) Cycle(ctx context.Context) error {
	st, err := b.Status(ctx)
	if err != nil {
		return err
	}
	if st == StateOff {
		return b.On(ctx)
	}
	return b.control(ctx, "power cycle", chassis.ChassisControlPowerCycle)
}

func (b *ipmiBMC) SetBootDevice(ctx context.Context, d Device, persistent bool) error {
	sel := types.BootDeviceSelectorForcePXE
	if d == DeviceDisk {
		sel = types.BootDeviceSelectorForceHardDrive
	}
	if err := b.c.SetBootDevice(ctx, sel, types.BIOSBootTypeLegacy, persistent); err != nil {
		return fmt.Errorf("ipmi %s: boot device %s: %w", b.addr, d, classify(err))
	}
	return nil
}

func (b *ipmiBMC) Status(ctx context.Context) (State, error) {
	st, err := b.c.GetChassisStatus(ctx)
	if err != nil {
		return StateUnknown, fmt.Errorf("ipmi %s: chassis status: %w", b.addr, classify(err))
	}
	if st.PowerIsOn {
		return StateOn, nil
	}
	return StateOff, nil
}

func (b *ipmiBMC) Close(ctx context.Context) error { return b.c.Close(ctx) }
