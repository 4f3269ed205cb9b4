// Command drover boots, names and operates a zone of bare-metal machines.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	env := environment{
		stdin:  os.Stdin,
		stdout: os.Stdout,
		stderr: os.Stderr,
		getenv: os.Getenv,
	}
	code := run(ctx, os.Args[1:], env)
	stop()
	os.Exit(code)
}

// environment is everything a command may touch outside its arguments, so
// tests can run commands in-process.
type environment struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

// exitError carries a specific exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}

// Exit codes scripts can rely on.
const (
	exitOK      = 0
	exitError1  = 1 // any failure, including an invalid design
	exitChanges = 2 // plan: the design differs from what is applied
	exitUsage   = 64
)

func run(ctx context.Context, args []string, env environment) int {
	root := newRootCommand(ctx, env)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(env.stderr, "drover:", ee.err)
		}
		return ee.code
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(env.stderr, "drover:", err)
		return exitUsage
	}
	fmt.Fprintln(env.stderr, "drover:", err)
	return exitError1
}

type usageError struct{ err error }

func (u *usageError) Error() string { return u.err.Error() }
