package boot

import (
	"fmt"
	"strings"
	"sync"
	"testing"
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
