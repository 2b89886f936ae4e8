// Command netcheck is the container of the NetworkPolicy e2e
// (e2e/test_network_policy.py): it serves on several ports, as a serving pod
// does (Triton's HTTP and gRPC ports, the sidecar's proxies and admin port),
// and, on request, connects to another pod the way a client in its own
// namespace would, reporting what happened.
//
//	netcheck serve PORT...
//
// Every PORT answers HTTP/1.1 and cleartext HTTP/2 with prior knowledge (the
// transport gRPC uses): GET / returns {"port": P, "proto": "HTTP/2.0"}.
//
//	GET /probe?addr=HOST:PORT&mode=http|h2|tcp&timeout=2s
//
// connects from this pod to ADDR: tcp (a connection only), http (an HTTP/1.1
// GET /), h2 (the HTTP/2 preface and a GET / over prior-knowledge h2c). It
// answers 200 with {"ok": bool, "error": "...", "proto": "...", "port": P}:
// a policy that drops the connection shows as ok=false with a timeout.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

// maxBody caps what a probe reads back: the servers answer a few bytes.
const maxBody = 64 << 10

type answer struct {
	Port  int    `json:"port"`
	Proto string `json:"proto"`
}

type result struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	Proto string `json:"proto,omitempty"`
	Port  int    `json:"port,omitempty"`
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func handler(port int) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, answer{Port: port, Proto: r.Proto})
	})
	mux.HandleFunc("/probe", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		timeout, err := time.ParseDuration(q.Get("timeout"))
		if err != nil || timeout <= 0 || timeout > 30*time.Second {
			timeout = 2 * time.Second
		}
		writeJSON(w, probe(r.Context(), q.Get("addr"), q.Get("mode"), timeout))
	})
	return mux
}

func probe(ctx context.Context, addr, mode string, timeout time.Duration) result {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return result{Error: fmt.Sprintf("addr %q: %v", addr, err)}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if mode == "tcp" {
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return result{Error: err.Error()}
		}
		conn.Close()
		return result{OK: true}
	}
	protocols := new(http.Protocols)
	switch mode {
	case "http":
		protocols.SetHTTP1(true)
	case "h2":
		protocols.SetUnencryptedHTTP2(true)
	default:
		return result{Error: fmt.Sprintf("mode %q: want tcp, http or h2", mode)}
	}
	transport := &http.Transport{Protocols: protocols, DisableKeepAlives: true}
	defer transport.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		return result{Error: err.Error()}
	}
	resp, err := transport.RoundTrip(req)
	if err != nil {
		return result{Error: err.Error()}
	}
	defer resp.Body.Close()
	var got answer
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(&got); err != nil {
		return result{Error: fmt.Sprintf("status %d, body: %v", resp.StatusCode, err)}
	}
	return result{OK: resp.StatusCode == http.StatusOK, Proto: resp.Proto, Port: got.Port}
}

func serve(ports []string) {
	errs := make(chan error, len(ports))
	for _, p := range ports {
		port, err := strconv.Atoi(p)
		if err != nil || port <= 0 || port > 65535 {
			fmt.Fprintf(os.Stderr, "serve: bad port %q\n", p)
			os.Exit(2)
		}
		protocols := new(http.Protocols)
		protocols.SetHTTP1(true)
		protocols.SetUnencryptedHTTP2(true)
		srv := &http.Server{
			Addr:              ":" + p,
			Handler:           handler(port),
			Protocols:         protocols,
			ReadHeaderTimeout: 5 * time.Second,
		}
		go func() {
			errs <- srv.ListenAndServe()
		}()
	}
	// One port failing (e.g. already in use) ends the program: the pod's
	// restart shows it, rather than a server that half works.
	err := <-errs
	fmt.Fprintf(os.Stderr, "serve: %v\n", err)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 3 || os.Args[1] != "serve" {
		fmt.Fprintln(os.Stderr, "usage: netcheck serve PORT...")
		os.Exit(2)
	}
	serve(os.Args[2:])
}
