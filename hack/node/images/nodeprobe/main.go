// Command nodeprobe is the container of the real-node e2e: one static binary
// whose subcommands make the kubelet and the runtime show what they enforce.
//
//	nodeprobe serve ADDR       HTTP: /healthz, /file?path=P (a file's content, e.g. a projected ConfigMap)
//	nodeprobe get URL          GET URL until it answers (or 60 s), print the body; exit 1 on failure
//	nodeprobe write PATH       create PATH; exit 1 with the error (e.g. a read-only root filesystem)
//	nodeprobe alloc MIB        allocate and touch MIB MiB, then sleep (an OOM kill ends it first)
//
// Each outcome is also written to /dev/termination-log, so that the pod's
// status carries it without reading the container's logs.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

func report(code int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	fmt.Println(msg)
	_ = os.WriteFile("/dev/termination-log", []byte(msg), 0o644)
	os.Exit(code)
}

// maxFile caps what /file returns: the probe serves small config files only.
const maxFile = 1 << 20

func serve(addr string) {
	http.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})
	http.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(r.URL.Query().Get("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		defer f.Close()
		_, _ = io.Copy(w, io.LimitReader(f, maxFile))
	})
	srv := &http.Server{Addr: addr, ReadHeaderTimeout: 5 * time.Second}
	report(1, "serve: %v", srv.ListenAndServe())
}

func get(url string) {
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, maxFile))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				report(0, "%s", body)
			}
			err = fmt.Errorf("status %d: %s", resp.StatusCode, body)
		}
		last = err
		time.Sleep(time.Second)
	}
	report(1, "get %s: %v", url, last)
}

func write(path string) {
	if err := os.WriteFile(path, []byte("written\n"), 0o644); err != nil {
		report(1, "write: %v", err)
	}
	report(0, "write: ok")
}

func alloc(mib int) {
	chunks := make([][]byte, 0, mib)
	for i := 0; i < mib; i++ {
		c := make([]byte, 1<<20)
		for j := range c { // touch every page so it is resident, not just reserved
			c[j] = byte(j)
		}
		chunks = append(chunks, c)
	}
	fmt.Printf("alloc: holding %d MiB\n", len(chunks))
	time.Sleep(time.Hour)
}

func main() {
	if len(os.Args) < 2 {
		report(2, "usage: nodeprobe serve ADDR | get URL | write PATH | alloc MIB")
	}
	arg := ""
	if len(os.Args) > 2 {
		arg = os.Args[2]
	}
	switch os.Args[1] {
	case "serve":
		serve(arg)
	case "get":
		get(arg)
	case "write":
		write(arg)
	case "alloc":
		n, err := strconv.Atoi(arg)
		if err != nil || n <= 0 {
			report(2, "alloc: want a positive MiB count, got %q", arg)
		}
		alloc(n)
	default:
		report(2, "unknown subcommand %q", os.Args[1])
	}
}
