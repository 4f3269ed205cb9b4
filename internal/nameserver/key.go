package nameserver

import (
	"encoding/base64"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/miekg/dns"
)

// Key is a TSIG key: what secondaries sign transfers and drover signs NOTIFY with.
type Key struct {
	Name      string // fully qualified, as TSIG records carry it
	Algorithm string // fully qualified, e.g. hmac-sha256.
	Secret    string // base64
}

var (
	keyBlock  = regexp.MustCompile(`(?s)key\s+"?([A-Za-z0-9._-]+)"?\s*\{(.*?)\}\s*;`)
	algorithm = regexp.MustCompile(`algorithm\s+"?([A-Za-z0-9-]+)"?\s*;`)
	secretRE  = regexp.MustCompile(`secret\s+"([A-Za-z0-9+/=]+)"\s*;`)
)

// algorithms drover accepts (RFC 8945 recommends SHA-256; MD5 is refused).
var algorithms = map[string]string{
	"hmac-sha1": dns.HmacSHA1, "hmac-sha224": dns.HmacSHA224, "hmac-sha256": dns.HmacSHA256,
	"hmac-sha384": dns.HmacSHA384, "hmac-sha512": dns.HmacSHA512,
}

// LoadKey reads a key file in BIND's format, as `tsig-keygen NAME` writes it:
//
//	key "drover-xfr" { algorithm hmac-sha256; secret "..."; };
//
// so that the same file can be included in the secondaries' named.conf.
// Go has no parser for named.conf; this reads only that one statement.
func LoadKey(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read TSIG key: %w", err)
	}
	k, err := ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("TSIG key %s: %w", path, err)
	}
	return k, nil
}

// ParseKey parses one BIND key statement.
func ParseKey(text string) (*Key, error) {
	text = stripComments(text)
	blocks := keyBlock.FindAllStringSubmatch(text, -1)
	if len(blocks) != 1 {
		return nil, fmt.Errorf(`want exactly one key statement like: key "drover-xfr" { algorithm hmac-sha256; secret "..."; }; (tsig-keygen drover-xfr writes one), found %d`, len(blocks))
	}
	name, body := blocks[0][1], blocks[0][2]
	a := algorithm.FindStringSubmatch(body)
	if a == nil {
		return nil, fmt.Errorf("key %s has no algorithm", name)
	}
	alg, ok := algorithms[strings.ToLower(a[1])]
	if !ok {
		return nil, fmt.Errorf("key %s: algorithm %s is not one of hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384, hmac-sha512", name, a[1])
	}
	s := secretRE.FindStringSubmatch(body)
	if s == nil {
		return nil, fmt.Errorf("key %s has no secret", name)
	}
	raw, err := base64.StdEncoding.DecodeString(s[1])
	if err != nil || len(raw) < 16 {
		return nil, fmt.Errorf("key %s: the secret is not base64 of at least 16 bytes", name)
	}
	return &Key{Name: dns.Fqdn(strings.ToLower(name)), Algorithm: alg, Secret: s[1]}, nil
}

// stripComments removes named.conf's comments (#, // and /* */) outside
// quoted strings: a base64 secret may hold "//" (one key in about a hundred
// that tsig-keygen writes), which cutting every line at "//" took for a comment.
func stripComments(text string) string {
	var b strings.Builder
	inQuote := false
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case inQuote:
			inQuote = c != '"'
		case c == '"':
			inQuote = true
		case c == '#' || c == '/' && i+1 < len(text) && text[i+1] == '/':
			for i < len(text) && text[i] != '\n' {
				i++
			}
			if i < len(text) {
				b.WriteByte('\n')
			}
			continue
		case c == '/' && i+1 < len(text) && text[i+1] == '*':
			end := strings.Index(text[i+2:], "*/")
			if end < 0 {
				return b.String()
			}
			i += 2 + end + 1
			b.WriteByte(' ')
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
