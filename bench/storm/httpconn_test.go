package storm

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMachineHTTP(t *testing.T) {
	var mu sync.Mutex
	conns := map[string]bool{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns[r.RemoteAddr] = true
		mu.Unlock()
		switch r.URL.Path {
		case "/script":
			fmt.Fprintf(w, "#!ipxe\nkernel x drover.token=%s\n", r.URL.Query().Get("ticket"))
		case "/phone-home":
			r.ParseForm()
			if r.Form.Get("status") != "installed" || r.URL.Query().Get("token") != "t k" {
				http.Error(w, "bad phone-home", http.StatusBadRequest)
				return
			}
			fmt.Fprint(w, "ok")
		case "/close":
			w.Header().Set("Connection", "close")
			fmt.Fprint(w, "bye")
		default:
			http.NotFound(w, r)
		}
	}))
	srv.Start()
	defer srv.Close()
	h := &machineHTTP{local: netip.MustParseAddr("127.0.0.1"), timeout: 5 * time.Second}
	defer h.close()

	steps := []struct {
		method, path, form string
		status             int
		body               string
	}{
		{"GET", "/script?ticket=abc", "", 200, "#!ipxe\nkernel x drover.token=abc\n"},
		{"POST", "/phone-home?token=t+k", "status=installed", 200, "ok"},
		{"POST", "/phone-home?token=t+k", "status=failed", 400, "bad phone-home\n"},
		{"GET", "/nothing", "", 404, "404 page not found\n"},
	}
	for _, s := range steps {
		status, body, err := h.do(s.method, srv.URL+s.path, s.form)
		if err != nil || status != s.status || string(body) != s.body {
			t.Fatalf("%s %s: %d %q %v, want %d %q", s.method, s.path, status, body, err, s.status, s.body)
		}
	}
	if len(conns) != 1 {
		t.Errorf("%d connections for %d requests, want one kept alive", len(conns), len(steps))
	}

	// The server ends the connection: the next request opens another.
	if _, err := h.get(srv.URL + "/close"); err != nil {
		t.Fatal(err)
	}
	if h.conn != nil {
		t.Error("connection kept after Connection: close")
	}
	if _, err := h.get(srv.URL + "/script"); err != nil {
		t.Fatal(err)
	}
	// The server drops an idle connection: the request is sent again on a new one.
	srv.CloseClientConnections()
	if got, err := h.get(srv.URL + "/script?ticket=z"); err != nil || !strings.Contains(got, "token=z") {
		t.Fatalf("after the server closed the connection: %q %v", got, err)
	}
	// A POST is not sent twice: the server may have acted on it.
	srv.CloseClientConnections()
	if _, _, err := h.do("POST", srv.URL+"/phone-home?token=t+k", "status=installed"); err == nil {
		t.Error("POST on a connection the server closed was sent again")
	}
	if _, _, err := h.do("POST", srv.URL+"/phone-home?token=t+k", "status=installed"); err != nil {
		t.Errorf("POST on a new connection: %v", err)
	}
	if _, err := h.get(srv.URL + "/nothing"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("get of a missing page: %v, want the 404", err)
	}
	// Nobody listening: an error, not a hang.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	if _, _, err := h.do("GET", "http://"+addr+"/", ""); err == nil {
		t.Error("request to a closed port succeeded")
	}
	if _, _, err := h.do("GET", "https://"+addr+"/", ""); err == nil {
		t.Error("https accepted")
	}
}
