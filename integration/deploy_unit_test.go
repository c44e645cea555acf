package integration

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

const unitPath = "../deploy/caddy-sessionauth.service"

// unitEntry is one Key=value line of a unit file, in its section.
type unitEntry struct{ section, key, value string }

type unitFile []unitEntry

func readUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var u unitFile
	section := ""
	s := bufio.NewScanner(f)
	for n := 1; s.Scan(); n++ {
		line := strings.TrimSpace(s.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a Key=value line in a section: %q", path, n, line)
			}
			u = append(u, unitEntry{section, k, v})
		}
	}
	return u
}

// values are the values of every line with the key, in order.
func (u unitFile) values(section, key string) []string {
	var vs []string
	for _, e := range u {
		if e.section == section && e.key == key {
			vs = append(vs, e.value)
		}
	}
	return vs
}

func (u unitFile) value(t *testing.T, section, key string) string {
	t.Helper()
	vs := u.values(section, key)
	if len(vs) != 1 {
		t.Fatalf("the unit has %d %s= lines in [%s], want 1", len(vs), key, section)
	}
	return vs[0]
}

// environment is the unit's Environment= assignments.
func (u unitFile) environment() map[string]string {
	env := map[string]string{}
	for _, line := range u.values("Service", "Environment") {
		for _, kv := range strings.Fields(line) {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
	}
	return env
}

// The unit as systemd reads it: `systemd-analyze verify` in a root made of
// this machine's system units, the unit, and a caddy at the unit's
// ExecStart path, with no complaint at all (an unknown key or a bad value
// is only a warning there, so any output fails the test).
func TestDeployUnitVerifies(t *testing.T) {
	u := readUnit(t, unitPath)
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		checkUnitKeysWithoutSystemd(t, u)
		return
	}
	root := t.TempDir()
	units := "/usr/lib/systemd/system"
	if _, err := os.Stat(units); err != nil {
		units = "/lib/systemd/system"
	}
	for _, dir := range []string{"usr/lib/systemd", "etc/systemd/system", "usr/bin"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mustRun(t, "cp", "-r", units, filepath.Join(root, "usr/lib/systemd")+"/")
	mustRun(t, "cp", unitPath, filepath.Join(root, "etc/systemd/system/"))
	start := strings.Fields(u.value(t, "Service", "ExecStart"))[0]
	if err := os.Link(filepath.Join(binaries(t), "caddy"), filepath.Join(root, start)); err != nil {
		mustRun(t, "cp", filepath.Join(binaries(t), "caddy"), filepath.Join(root, start))
	}
	out, err := exec.Command(analyze, "verify", "--root="+root, filepath.Base(unitPath)).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The exposure score, for the record (systemd's own scale, 0 to 10).
	out, _ = exec.Command(analyze, "security", "--offline=true", "--root="+root, filepath.Base(unitPath)).CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	t.Log(lines[len(lines)-1])
}

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// checkUnitKeysWithoutSystemd stands in for systemd-analyze where it is
// not installed, and says so: every key must be one that systemd.unit(5),
// systemd.service(5), systemd.exec(5) and systemd.resource-control(5)
// document for its section. It cannot check values the way systemd does.
func checkUnitKeysWithoutSystemd(t *testing.T, u unitFile) {
	t.Log("systemd-analyze is not installed: checking the unit's section and key names against systemd's documented keys instead of verifying it")
	known := map[string][]string{
		"Unit":    {"Description", "Documentation", "After", "Wants", "Requires", "Before"},
		"Install": {"WantedBy"},
		"Service": {"Type", "User", "Group", "Environment", "ExecStart", "ExecReload", "TimeoutStopSec", "Restart",
			"LimitNOFILE", "StateDirectory", "StateDirectoryMode", "UMask", "AmbientCapabilities", "CapabilityBoundingSet",
			"NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "ProtectKernelTunables",
			"ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups", "ProtectClock", "ProtectHostname",
			"ProtectProc", "RestrictAddressFamilies", "RestrictNamespaces", "RestrictRealtime", "RestrictSUIDSGID",
			"LockPersonality", "MemoryDenyWriteExecute", "RemoveIPC", "SystemCallArchitectures", "SystemCallFilter",
			"SystemCallErrorNumber"},
	}
	for _, e := range u {
		if !slices.Contains(known[e.section], e.key) {
			t.Errorf("[%s] %s= is not a key systemd documents for that section", e.section, e.key)
		}
	}
}

// The unit's choices hold together: Caddy's data directory (the file
// store's home) is the state directory, the one place ProtectSystem=strict
// leaves writable; reload is `caddy reload` of the config ExecStart runs;
// Caddy runs as a user of its own, without new privileges.
func TestDeployUnitKeepsTheStoreWritable(t *testing.T) {
	u := readUnit(t, unitPath)
	env := u.environment()
	state := "/var/lib/" + u.value(t, "Service", "StateDirectory")
	if got := filepath.Join(env["XDG_DATA_HOME"], "caddy"); got != state {
		t.Errorf("Caddy's data directory is %s, the writable state directory %s", got, state)
	}
	if got := filepath.Join(env["XDG_CONFIG_HOME"], "caddy"); got != state {
		t.Errorf("Caddy's config directory (autosave.json) is %s, the writable state directory %s", got, state)
	}
	for key, want := range map[string]string{"ProtectSystem": "strict", "NoNewPrivileges": "true", "ProtectHome": "true", "PrivateTmp": "true"} {
		if got := u.value(t, "Service", key); got != want {
			t.Errorf("%s=%s, want %s", key, got, want)
		}
	}
	if user := u.value(t, "Service", "User"); user == "" || user == "root" {
		t.Errorf("User=%q: Caddy would run as root", user)
	}
	start := strings.Fields(u.value(t, "Service", "ExecStart"))
	reload := strings.Fields(u.value(t, "Service", "ExecReload"))
	if len(start) < 2 || start[1] != "run" || len(reload) < 2 || reload[1] != "reload" || reload[0] != start[0] {
		t.Fatalf("ExecStart %v and ExecReload %v: want caddy run and the same caddy's reload", start, reload)
	}
	if flagValue(start, "--config") != flagValue(reload, "--config") || flagValue(start, "--adapter") != flagValue(reload, "--adapter") {
		t.Errorf("ExecReload reads another config than ExecStart runs: %v, %v", start, reload)
	}
}

func flagValue(args []string, flag string) string {
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// The unit's own command lines, with the real caddy: ExecStart serves the
// default file store from the state directory, `caddy validate` passes
// while it runs, and ExecReload, run twice (the config changed, then not),
// brings in the new config while the session signed in before it goes on.
// Only the paths differ from the unit's: the binary, the Caddyfile and
// /var/lib are the test's own.
func TestDeployUnitReloadKeepsFileStore(t *testing.T) {
	u := readUnit(t, unitPath)
	bin := filepath.Join(binaries(t), "caddy")
	varLib := t.TempDir()
	cfPath := filepath.Join(t.TempDir(), "Caddyfile")
	unitCaddy := strings.Fields(u.value(t, "Service", "ExecStart"))[0]
	unitConfig := flagValue(strings.Fields(u.value(t, "Service", "ExecStart")), "--config")
	// command is one of the unit's Exec lines, on the test's paths.
	command := func(key string) *exec.Cmd {
		args := strings.Fields(u.value(t, "Service", key))
		for i, a := range args {
			switch a {
			case unitCaddy:
				args[i] = bin
			case unitConfig:
				args[i] = cfPath
			}
		}
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = os.Environ()
		for k, v := range u.environment() {
			cmd.Env = append(cmd.Env, k+"="+strings.Replace(v, "/var/lib", varLib, 1))
		}
		return cmd
	}
	up := newUpstream(t)
	port, adminPort := redisserver.FreePort(t), redisserver.FreePort(t)
	config := func(marker string) string {
		return fmt.Sprintf("{\n\tadmin 127.0.0.1:%d\n\tauto_https off\n}\nhttp://127.0.0.1:%d {\n\theader X-Config %s\n\tsession_auth {\n\t\tstore file\n\t}\n\treverse_proxy %s\n}\n",
			adminPort, port, marker, up.addr)
	}
	writeConfig := func(text string) {
		if err := os.WriteFile(cfPath, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig(config("first"))

	p := &caddyProcess{output: &bytes.Buffer{}, exited: make(chan struct{})}
	p.cmd = command("ExecStart")
	out := &lockedWriter{w: p.output}
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(p.kill)
	g := &gateway{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port), port: port}
	p.waitServing(t, g.base)

	c := newClient(t, g)
	c.signIn("deploy-" + randomID())
	store := filepath.Join(varLib, u.value(t, "Service", "StateDirectory"), "session_auth", "sessions.db")
	if _, err := os.Stat(store); err != nil {
		t.Fatalf("the file store is not in the state directory: %v", err)
	}

	validate := exec.Command(bin, "validate", "--config", cfPath, "--adapter", "caddyfile")
	validate.Env = command("ExecStart").Env
	if out, err := validate.CombinedOutput(); err != nil {
		t.Fatalf("caddy validate while the unit's Caddy runs: %v\n%s", err, out)
	}
	for _, marker := range []string{"second", "second"} {
		writeConfig(config(marker))
		if out, err := command("ExecReload").CombinedOutput(); err != nil {
			t.Fatalf("ExecReload: %v\n%s", err, out)
		}
		res := c.doThroughHandOver("GET", "/")
		if res.StatusCode != 200 || res.headers["X-Auth-User"] == "" || res.Header.Get("X-Config") != marker {
			t.Fatalf("after ExecReload: %d, user %q, config %q, want 200, the user, %q\n%s", res.StatusCode, res.headers["X-Auth-User"], res.Header.Get("X-Config"), marker, p.output)
		}
	}
}
