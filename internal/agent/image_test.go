package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover/drover/internal/install"
)

// memDisk is a disk in memory.
type memDisk struct {
	b      []byte
	synced int
}

func (d *memDisk) WriteAt(p []byte, off int64) (int, error) { return copy(d.b[off:], p), nil }
func (d *memDisk) Size() int64                              { return int64(len(d.b)) }
func (d *memDisk) Sync() error                              { d.synced++; return nil }

// imageServer serves body with Range; the first breaks requests are cut
// after a quarter of the image, and once broken > failAfter every further
// request fails with 503 (failAfter < 0: never).
func imageServer(t *testing.T, body []byte, breaks, failAfter int) (*httptest.Server, *atomic.Int32) {
	var broken, ranged atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" {
			ranged.Add(1)
		}
		if failAfter >= 0 && int(broken.Load()) > failAfter {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		if int(broken.Load()) < breaks {
			broken.Add(1)
			start := 0
			if rg := r.Header.Get("Range"); rg != "" {
				start, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
				w.Header().Set("Content-Range", "bytes "+strconv.Itoa(start)+"-"+strconv.Itoa(len(body)-1)+"/"+strconv.Itoa(len(body)))
				w.Header().Set("Content-Length", strconv.Itoa(len(body)-start))
				w.WriteHeader(http.StatusPartialContent)
			} else {
				w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			}
			w.Write(body[start:min(start+len(body)/4, len(body))])
			w.(http.Flusher).Flush()
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		http.ServeContent(w, r, "img", time.Time{}, bytes.NewReader(body))
	}))
	t.Cleanup(srv.Close)
	return srv, &ranged
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/4096)
	}
	return b
}

func TestWriteImage(t *testing.T) {
	raw := payload(3<<20 + 12345)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw)
	zw.Close()
	tests := []struct {
		name      string
		body      []byte
		img       install.Image
		disk      int
		breaks    int
		wantErr   string
		wantRange bool
	}{
		{name: "raw", body: raw, img: install.Image{Format: install.FormatRaw, SHA256: sum(raw)}, disk: 8 << 20},
		{name: "gzip", body: gz.Bytes(), img: install.Image{Format: install.FormatGzip, SHA256: sum(gz.Bytes()), DiskBytes: int64(len(raw))}, disk: 8 << 20},
		{name: "truncated stream resumes with Range", body: raw, img: install.Image{Format: install.FormatRaw, SHA256: sum(raw)}, disk: 8 << 20, breaks: 3, wantRange: true},
		{name: "gzip resumes mid-stream", body: gz.Bytes(), img: install.Image{Format: install.FormatGzip, SHA256: sum(gz.Bytes()), DiskBytes: int64(len(raw))}, disk: 8 << 20, breaks: 2, wantRange: true},
		{name: "checksum mismatch", body: raw, img: install.Image{Format: install.FormatRaw, SHA256: sum([]byte("another image"))}, disk: 8 << 20, wantErr: "checksum mismatch"},
		{name: "disk smaller than the image", body: raw, img: install.Image{Format: install.FormatRaw, SHA256: sum(raw)}, disk: 2 << 20, wantErr: "the disk holds 2.0 MiB, image test 1 needs 3.0 MiB"},
		{name: "gzip larger than its disk bytes claim", body: gz.Bytes(), img: install.Image{Format: install.FormatGzip, SHA256: sum(gz.Bytes()), DiskBytes: 1 << 20}, disk: 2 << 20, wantErr: "does not fit"},
		{name: "unknown format", body: raw, img: install.Image{Format: "qcow2", SHA256: sum(raw), DiskBytes: 1}, disk: 8 << 20, wantErr: `format "qcow2"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, ranged := imageServer(t, tt.body, tt.breaks, -1)
			img := tt.img
			img.Name, img.Version, img.URL, img.Size = "test", "1", srv.URL+"/img", int64(len(tt.body))
			disk := &memDisk{b: bytes.Repeat([]byte{0xAA}, tt.disk)}
			var last int64
			n, err := WriteImage(context.Background(), srv.Client(), img, disk, 5, func(done, total int64) { last = done })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(tt.wantErr, "checksum") {
					if !errors.Is(err, ErrChecksum) {
						t.Errorf("err %v is not ErrChecksum", err)
					}
					if !bytes.Equal(disk.b[:headBytes], make([]byte, headBytes)) {
						t.Error("a disk whose image failed its checksum still has a boot sector")
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(len(raw)) || !bytes.Equal(disk.b[:len(raw)], raw) {
				t.Fatalf("wrote %d bytes, disk differs from the image", n)
			}
			if disk.b[len(raw)] != 0xAA {
				t.Error("wrote past the image")
			}
			if last != int64(len(tt.body)) {
				t.Errorf("last progress %d, want %d", last, len(tt.body))
			}
			if got := ranged.Load() > 0; got != tt.wantRange {
				t.Errorf("range requests: %v, want %v", got, tt.wantRange)
			}
		})
	}
}

func TestWriteImageGivesUpAfterRetries(t *testing.T) {
	raw := payload(2 << 20)
	srv, _ := imageServer(t, raw, 1, 0)
	img := install.Image{Name: "test", Version: "1", URL: srv.URL, Size: int64(len(raw)), SHA256: sum(raw), Format: install.FormatRaw}
	disk := &memDisk{b: make([]byte, 4<<20)}
	copy(disk.b, bytes.Repeat([]byte{1}, headBytes))
	_, err := WriteImage(context.Background(), srv.Client(), img, disk, 2, nil)
	if err == nil || !strings.Contains(err.Error(), "times in a row") {
		t.Fatalf("err = %v", err)
	}
	if !bytes.Equal(disk.b[:headBytes], make([]byte, headBytes)) {
		t.Error("a failed download left the old boot sector")
	}
}
