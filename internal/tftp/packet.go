// Package tftp is a read-only TFTP server (RFC 1350) with option negotiation
// (RFC 2347), blksize (RFC 2348), timeout and tsize (RFC 2349) and windowsize
// (RFC 7440). It is written here rather than on pin/tftp because windowsize
// needs control of the send loop that no Go TFTP library offers.
package tftp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Opcodes (RFC 1350, RFC 2347).
const (
	opRRQ   = 1
	opWRQ   = 2
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6
)

// Error codes (RFC 1350).
const (
	errNotDefined    = 0
	errFileNotFound  = 1
	errAccess        = 2
	errIllegalOp     = 4
	errOptionRefused = 8
)

// Request is a parsed read or write request.
type Request struct {
	Write    bool
	Filename string
	Mode     string
	Options  map[string]string // lower-case names
	Order    []string          // option names in the order the client sent them
}

// ParseRequest parses an RRQ or WRQ packet.
func ParseRequest(b []byte) (*Request, error) {
	if len(b) < 4 {
		return nil, errors.New("packet too short")
	}
	op := binary.BigEndian.Uint16(b)
	if op != opRRQ && op != opWRQ {
		return nil, fmt.Errorf("opcode %d is not a request", op)
	}
	fields := bytes.Split(b[2:], []byte{0})
	// A well-formed request ends with a NUL, so the last field is empty.
	if len(fields) < 3 || len(fields[len(fields)-1]) != 0 {
		return nil, errors.New("request fields are not NUL-terminated")
	}
	fields = fields[:len(fields)-1]
	if len(fields)%2 != 0 {
		return nil, errors.New("option without a value")
	}
	r := &Request{Write: op == opWRQ, Filename: string(fields[0]), Mode: strings.ToLower(string(fields[1])), Options: map[string]string{}}
	if r.Filename == "" {
		return nil, errors.New("empty file name")
	}
	if r.Mode != "octet" && r.Mode != "netascii" {
		return nil, fmt.Errorf("unsupported mode %q", r.Mode)
	}
	for i := 2; i+1 < len(fields); i += 2 {
		name := strings.ToLower(string(fields[i]))
		if _, dup := r.Options[name]; dup {
			return nil, fmt.Errorf("option %q given twice", name)
		}
		r.Options[name] = string(fields[i+1])
		r.Order = append(r.Order, name)
	}
	return r, nil
}

func errorPacket(code uint16, msg string) []byte {
	b := make([]byte, 4, 5+len(msg))
	binary.BigEndian.PutUint16(b, opERROR)
	binary.BigEndian.PutUint16(b[2:], code)
	b = append(b, msg...)
	return append(b, 0)
}

func oackPacket(names []string, values map[string]string) []byte {
	b := []byte{0, opOACK}
	for _, n := range names {
		b = append(b, n...)
		b = append(b, 0)
		b = append(b, values[n]...)
		b = append(b, 0)
	}
	return b
}
