package main

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The test binary runs main when asked, so a test can watch it as a
// user would: its exit and what it prints.
func TestMain(m *testing.M) {
	if os.Getenv("DEMOAPP_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// A port in use (3000 in the README's quick start is often taken) is one
// line naming the port and the way out, never "listening on" first.
func TestPortInUseSaysSoFirst(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-no-login", "-listen", busy.Addr().String())
	cmd.Env = append(os.Environ(), "DEMOAPP_RUN_MAIN=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("demoapp on a port in use exited 0: %s", out)
	}
	text := string(out)
	if strings.Contains(text, "listening on") || !strings.Contains(text, busy.Addr().String()) ||
		!strings.Contains(text, "address already in use") || !strings.Contains(text, "-listen") {
		t.Fatalf("demoapp on a port in use printed:\n%s", text)
	}
}
