package main

import (
	"context"
	"errors"
	"strings"
)

// TFTPReport compares TFTP servers.
type TFTPReport struct{}

// HTTPReport compares HTTP artifact serving.
type HTTPReport struct{}

// ControlReport is control-plane scale.
type ControlReport struct{}

// DHCPReport compares DHCP servers with perfdhcp.
type DHCPReport struct{}

var errNotYet = errors.New("not implemented yet")

func benchTFTP(context.Context, *env) (*TFTPReport, error)       { return nil, errNotYet }
func benchHTTP(context.Context, *env) (*HTTPReport, error)       { return nil, errNotYet }
func benchControl(context.Context, *env) (*ControlReport, error) { return nil, errNotYet }
func benchDHCP(context.Context, *env) (*DHCPReport, error)       { return nil, errNotYet }

func (*TFTPReport) markdown(*strings.Builder)         {}
func (*HTTPReport) markdown(*strings.Builder)         {}
func (*ControlReport) markdown(*strings.Builder)      {}
func (*DHCPReport) markdown(*strings.Builder)         {}
func (*DHCPReport) plot() (string, map[string]string) { return "", nil }
