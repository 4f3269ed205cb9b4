package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/drover/drover/internal/install"
)

// Disk is where an image is written.
type Disk interface {
	io.WriterAt
	Size() int64
	Sync() error
}

// headBytes is the start of the disk (MBR, GPT, boot loader) kept back until
// the whole image has verified: a disk whose image fails its checksum is left
// without a boot sector, so firmware never boots a half or wrong image.
const headBytes = 1 << 20

// ErrChecksum means the image downloaded whole but is not the catalogue's.
var ErrChecksum = errors.New("image checksum mismatch")

// Progress is told how far the download is: bytes of the artifact read so far.
type Progress func(done, total int64)

// WriteImage streams img onto disk, verifying its SHA-256 on the way and
// resuming with HTTP Range after a broken connection (up to retries times in
// a row). It returns the bytes written to the disk.
func WriteImage(ctx context.Context, client *http.Client, img install.Image, disk Disk, retries int, progress Progress) (int64, error) {
	need := img.DiskBytes
	if need == 0 && img.Format == install.FormatRaw {
		need = img.Size
	}
	if need > disk.Size() {
		return 0, fmt.Errorf("the disk holds %s, image %s %s needs %s", humanBytes(disk.Size()), img.Name, img.Version, humanBytes(need))
	}
	src := &rangeReader{ctx: ctx, client: client, url: img.URL, total: img.Size, retries: retries, progress: progress}
	defer src.close()
	sum := sha256.New()
	var r io.Reader = io.TeeReader(src, sum)
	switch img.Format {
	case install.FormatRaw, "":
	case install.FormatGzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return 0, fmt.Errorf("image %s %s: %w", img.Name, img.Version, err)
		}
		r = zr
	default:
		return 0, fmt.Errorf("image %s %s: format %q is not one of raw, raw.gz", img.Name, img.Version, img.Format)
	}
	w := &heldWriter{disk: disk}
	n, err := io.CopyBuffer(w, r, make([]byte, 1<<20))
	if err == nil {
		// The decompressor may stop before the artifact's end; the checksum covers all of it.
		_, err = io.Copy(io.Discard, src)
	}
	if err != nil {
		return n, errors.Join(fmt.Errorf("write image %s %s: %w", img.Name, img.Version, err), wipeHead(disk))
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != img.SHA256 {
		return n, errors.Join(fmt.Errorf("%w: %s %s is %s, the catalogue says %s; the disk was left unbootable", ErrChecksum, img.Name, img.Version, got, img.SHA256), wipeHead(disk))
	}
	if _, err := disk.WriteAt(w.head.Bytes(), 0); err != nil {
		return n, fmt.Errorf("write the image's first MiB: %w", err)
	}
	return n, disk.Sync()
}

// wipeHead zeroes the start of the disk so that nothing on it boots.
func wipeHead(disk Disk) error {
	if _, err := disk.WriteAt(make([]byte, headBytes), 0); err != nil {
		return fmt.Errorf("wipe the disk's first MiB: %w", err)
	}
	return disk.Sync()
}

// heldWriter writes sequentially to the disk, keeping the first headBytes in memory.
type heldWriter struct {
	disk Disk
	off  int64
	head bytes.Buffer
}

func (w *heldWriter) Write(p []byte) (int, error) {
	n := len(p)
	if w.off < headBytes {
		k := min(int64(len(p)), headBytes-w.off)
		w.head.Write(p[:k])
		w.off += k
		p = p[k:]
	}
	if len(p) == 0 {
		return n, nil
	}
	if w.off+int64(len(p)) > w.disk.Size() {
		return 0, fmt.Errorf("the image does not fit: the disk ends at %s", humanBytes(w.disk.Size()))
	}
	if _, err := w.disk.WriteAt(p, w.off); err != nil {
		return 0, err
	}
	w.off += int64(len(p))
	return n, nil
}

// rangeReader reads a URL from start to end, reconnecting with a Range
// request from where it stopped when the connection breaks.
type rangeReader struct {
	ctx      context.Context
	client   *http.Client
	url      string
	total    int64
	retries  int
	progress Progress

	body     io.ReadCloser
	off      int64
	failures int
	reported time.Time
	ended    bool
}

func (r *rangeReader) Read(p []byte) (int, error) {
	for {
		if r.off == r.total {
			if !r.ended {
				r.ended = true
				r.report(true)
			}
			return 0, io.EOF
		}
		if r.body == nil {
			if err := r.open(); err != nil {
				var perm permanent
				if errors.As(err, &perm) {
					return 0, err
				}
				if err := r.backoff(err); err != nil {
					return 0, err
				}
				continue
			}
		}
		if max := r.total - r.off; int64(len(p)) > max {
			p = p[:max]
		}
		n, err := r.body.Read(p)
		r.off += int64(n)
		if n > 0 {
			r.failures = 0
			r.report(false)
			return n, nil
		}
		if err == nil {
			continue
		}
		r.close()
		if err := r.backoff(err); err != nil {
			return 0, err
		}
	}
}

// backoff counts a failure in a row and waits before the next attempt.
func (r *rangeReader) backoff(cause error) error {
	if r.ctx.Err() != nil {
		return r.ctx.Err()
	}
	r.failures++
	if r.failures > r.retries {
		return fmt.Errorf("download broke at byte %d of %d %d times in a row: %w", r.off, r.total, r.failures, cause)
	}
	select {
	case <-r.ctx.Done():
		return r.ctx.Err()
	case <-time.After(time.Duration(r.failures) * 500 * time.Millisecond):
	}
	return nil
}

// permanent is a download error retrying cannot mend.
type permanent struct{ error }

func (r *rangeReader) open() error {
	req, err := http.NewRequestWithContext(r.ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return err
	}
	if r.off > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(r.off, 10)+"-")
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("download %s: %w", r.url, err)
	}
	switch {
	case r.off > 0 && resp.StatusCode == http.StatusPartialContent:
	case r.off == 0 && resp.StatusCode == http.StatusOK:
	case resp.StatusCode >= 500:
		resp.Body.Close()
		return fmt.Errorf("download %s from byte %d: HTTP %s", r.url, r.off, resp.Status)
	default:
		resp.Body.Close()
		return permanent{fmt.Errorf("download %s from byte %d: HTTP %s", r.url, r.off, resp.Status)}
	}
	if resp.ContentLength >= 0 && resp.ContentLength != r.total-r.off {
		resp.Body.Close()
		return permanent{fmt.Errorf("download %s: the server has %d bytes from byte %d, the catalogue says the image is %d bytes", r.url, resp.ContentLength, r.off, r.total)}
	}
	r.body = resp.Body
	return nil
}

func (r *rangeReader) close() {
	if r.body != nil {
		r.body.Close()
		r.body = nil
	}
}

// report tells progress at most every ten seconds, and at the end.
func (r *rangeReader) report(final bool) {
	if r.progress == nil || !final && time.Since(r.reported) < 10*time.Second {
		return
	}
	r.reported = time.Now()
	r.progress(r.off, r.total)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}
