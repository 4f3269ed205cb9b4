// Package secret makes the random credentials drover hands out (operator
// tokens, install tokens, boot tickets, request ids) and the one-way hash
// under which it stores them, in one place.
package secret

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
)

// Hex returns n random bytes from the system's CSPRNG, hex-encoded.
func Hex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // crypto/rand.Read never fails (Go 1.24+): it crashes the program instead of returning short.
	return hex.EncodeToString(b)
}

// Hash is the SHA-256 of a credential, hex-encoded: what the store keeps
// instead of the credential. Credentials are 128+ random bits, so a plain
// hash (no salt, no stretching) is enough to make a stolen database useless.
func Hash(credential string) string {
	h := sha256.Sum256([]byte(credential))
	return hex.EncodeToString(h[:])
}
