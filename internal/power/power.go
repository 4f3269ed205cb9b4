// Package power drives machines' BMCs: power on, off, cycle, the next boot
// device, and status. Drivers speak one BMC protocol each; the Controller
// bounds how many BMC sessions are open at once per BMC network, times every
// call out and retries only what is safe to retry.
package power

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
)

// Action is what an operator asks of a machine's BMC.
type Action string

// Actions.
const (
	On      Action = "on"
	Off     Action = "off"
	Cycle   Action = "cycle"    // off, then on (on when it was off)
	PXEOnce Action = "pxe-once" // the next boot, only, from the network
	Status  Action = "status"
)

// ParseAction checks an action name.
func ParseAction(s string) (Action, error) {
	switch a := Action(s); a {
	case On, Off, Cycle, PXEOnce, Status:
		return a, nil
	}
	return "", fmt.Errorf("unknown power action %q: use on, off, cycle, pxe-once or status", s)
}

// State is a machine's power as its BMC reports it.
type State string

// Power states.
const (
	StateOn      State = "on"
	StateOff     State = "off"
	StateUnknown State = "unknown"
)

// Device is a boot device.
type Device string

// Boot devices.
const (
	DevicePXE  Device = "pxe"
	DeviceDisk Device = "disk"
)

// BMC is one open session with a machine's BMC.
type BMC interface {
	On(ctx context.Context) error
	Off(ctx context.Context) error
	// Cycle turns the machine off and on again, or on when it is off.
	Cycle(ctx context.Context) error
	// SetBootDevice sets the device of the next boot, or of every boot when persistent.
	SetBootDevice(ctx context.Context, d Device, persistent bool) error
	Status(ctx context.Context) (State, error)
	Close(ctx context.Context) error
}

// Driver opens sessions with BMCs of one protocol.
type Driver interface {
	Open(ctx context.Context, e Endpoint) (BMC, error)
}

// Endpoint is where a BMC listens and how to log in to it.
type Endpoint struct {
	Addr        netip.AddrPort
	Credentials Credentials
}

// Credentials log in to a BMC. They print redacted, so that a log line or an
// error that carries them does not carry the password.
type Credentials struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

func (c Credentials) String() string { return c.Username + ":<redacted>" }

// GoString redacts too (%#v).
func (c Credentials) GoString() string { return c.String() }

// Errors a driver reports, which decide whether a call is retried.
var (
	// ErrAuth: the BMC refused the credentials. Never retried: retrying bad
	// credentials locks accounts on many BMCs.
	ErrAuth = errors.New("the BMC refused the credentials")
	// ErrUnreachable: the BMC did not answer in time (or refused the port).
	ErrUnreachable = errors.New("the BMC did not answer")
)
