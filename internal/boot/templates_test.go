package boot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestTemplatesParseEachTextOnce(t *testing.T) {
	c := &templates{}
	f := Facts{Name: "web-1"}
	for _, tc := range []struct {
		text, want, err string
	}{
		{text: "host {{.Name}}", want: "host web-1"},
		{text: "host {{.Name}}", want: "host web-1"}, // from the cache
		{text: "edited {{.Name}}", want: "edited web-1"},
		{text: "broken {{.Name", err: "template install: "},
		{text: "{{.NoSuchFact}}", err: "template install: "},
	} {
		got, err := c.renderText("template install", tc.text, f)
		if tc.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want one starting %q", tc.text, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %q %v, want %q", tc.text, got, err, tc.want)
		}
	}
	if n := len(c.parsed); n != 3 {
		t.Errorf("%d texts parsed and kept, want 3 (two good, the fact error parses)", n)
	}
	var nilCache *templates
	if got, err := nilCache.renderText("template install", "host {{.Name}}", f); err != nil || got != "host web-1" {
		t.Errorf("without a cache: %q %v", got, err)
	}
}

func TestTemplatesStayBounded(t *testing.T) {
	c := &templates{}
	var wg sync.WaitGroup
	for i := range 2 * maxTemplates {
		wg.Add(1)
		go func() {
			defer wg.Done()
			text := fmt.Sprintf("edit %d {{.Name}}", i)
			if got, err := c.renderText("t", text, Facts{Name: "x"}); err != nil || got != fmt.Sprintf("edit %d x", i) {
				t.Errorf("%q: %q %v", text, got, err)
			}
		}()
	}
	wg.Wait()
	if n := len(c.parsed); n == 0 || n > maxTemplates {
		t.Errorf("%d templates kept, want 1-%d", n, maxTemplates)
	}
}

func TestTemplateFilesReadAgainWhenChanged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "install")
	c := &templates{}
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		edit func()
		want string
	}{
		{"first read", func() { write("one AAAA"); os.Chtimes(path, old, old) }, "one AAAA"},
		{"unchanged, from the cache", func() {}, "one AAAA"},
		{"edited in place, same size, modification time put back", func() { write("one BBBB"); os.Chtimes(path, old, old) }, "one BBBB"},
		{"replaced by another file, same size and times", func() {
			next := filepath.Join(dir, "next")
			os.WriteFile(next, []byte("one CCCC"), 0o644)
			os.Chtimes(next, old, old)
			if err := os.Rename(next, path); err != nil {
				t.Fatal(err)
			}
		}, "one CCCC"},
		{"edited to a new length", func() { write("two, longer") }, "two, longer"},
	} {
		tc.edit()
		if got, err := c.readFile(path); err != nil || got != tc.want {
			t.Errorf("%s: %q %v, want %q", tc.name, got, err, tc.want)
		}
	}
	os.Remove(path)
	if _, err := c.readFile(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("removed file: %v, want not-exist", err)
	}
	var nilCache *templates
	write("no cache")
	if got, err := nilCache.readFile(path); err != nil || got != "no cache" {
		t.Errorf("without a cache: %q %v", got, err)
	}
	for i := range 2 * maxTemplates {
		p := filepath.Join(dir, fmt.Sprint(i))
		os.WriteFile(p, []byte(p), 0o644)
		if got, err := c.readFile(p); err != nil || got != p {
			t.Fatalf("file %d: %q %v", i, got, err)
		}
	}
	if n := len(c.files); n == 0 || n > maxTemplates {
		t.Errorf("%d files kept, want 1-%d", n, maxTemplates)
	}
}
