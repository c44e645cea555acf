package integration

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// pluginModules are the Caddy modules this plugin registers, as
// `caddy list-modules` names them.
var pluginModules = []string{"session_auth", "http.handlers.session_auth", "http.handlers.session_require", "admin.api.session_auth"}

// caddyVersion is the Caddy release the plugin's go.mod requires.
func caddyVersion(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/caddyserver/caddy/v2")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// dockerfile is deploy/Dockerfile as instructions (continuation lines
// joined), each with its stage's index.
type instruction struct {
	stage      int
	verb, args string
}

func readDockerfile(t *testing.T) []instruction {
	t.Helper()
	f, err := os.Open("../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ins []instruction
	stage, pending := -1, ""
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if pending == "" && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			pending += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		line, pending = pending+line, ""
		verb, args, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		if verb == "FROM" {
			stage++
		}
		ins = append(ins, instruction{stage, verb, strings.TrimSpace(args)})
	}
	return ins
}

// The Dockerfile's build steps, run here as its build stage runs them:
// deploy/build.sh builds Caddy through xcaddy from this checkout, and the
// binary lists every module of the plugin. Docker itself cannot run on
// this machine (no daemon, no registry to pull golang or distroless from),
// so the rest of the Dockerfile is checked for what it promises: the
// build stage runs this script, the image runs as a non-root user, Caddy's
// data directory (the file store's home) is a volume, and the Caddyfile it
// starts with is deploy/Caddyfile, which the built Caddy validates.
func TestDeployDockerBuildSteps(t *testing.T) {
	ins := readDockerfile(t)
	last := ins[len(ins)-1].stage
	var built string
	env := map[string]string{}
	var user, cmd string
	var volumes []string
	copied := map[string]string{} // destination → source, in the final stage
	for _, in := range ins {
		switch {
		case in.stage < last && in.verb == "RUN" && strings.HasPrefix(in.args, "deploy/build.sh "):
			built = strings.Fields(in.args)[1]
		case in.stage == last && in.verb == "ENV":
			for _, kv := range strings.Fields(in.args) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
		case in.stage == last && in.verb == "USER":
			user = in.args
		case in.stage == last && in.verb == "VOLUME":
			volumes = strings.Fields(strings.NewReplacer("[", "", "]", "", `"`, "", ",", " ").Replace(in.args))
		case in.stage == last && in.verb == "COPY" && !strings.HasPrefix(in.args, "--from"):
			f := strings.Fields(in.args)
			copied[f[len(f)-1]] = f[0]
		case in.stage == last && in.verb == "CMD":
			cmd = in.args
		}
	}
	if built == "" {
		t.Fatal("no build stage runs deploy/build.sh")
	}
	if !strings.HasPrefix(built, "/out/") {
		t.Errorf("deploy/build.sh writes %s, outside /out which the final stage copies", built)
	}
	if name, _, _ := strings.Cut(user, ":"); name == "" || name == "root" || name == "0" {
		t.Errorf("the image runs as %q: want a non-root user", user)
	}
	if data := env["XDG_DATA_HOME"]; data == "" || !slices.Contains(volumes, data) {
		t.Errorf("Caddy's data directory XDG_DATA_HOME=%q is not among the volumes %v", data, volumes)
	}
	configPath := ""
	if i := strings.Index(cmd, `"--config", "`); i >= 0 {
		configPath, _, _ = strings.Cut(cmd[i+len(`"--config", "`):], `"`)
	}
	if copied[configPath] != "deploy/Caddyfile" {
		t.Fatalf("CMD %s runs %q; the image's copy of deploy/Caddyfile is at %v", cmd, configPath, copied)
	}

	bin := filepath.Join(t.TempDir(), "caddy")
	build := exec.Command("../deploy/build.sh", bin)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("deploy/build.sh: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "list-modules").CombinedOutput()
	if err != nil {
		t.Fatalf("caddy list-modules: %v\n%s", err, out)
	}
	listed := strings.Fields(string(out))
	for _, m := range pluginModules {
		if !slices.Contains(listed, m) {
			t.Errorf("the xcaddy build does not list %s:\n%s", m, out)
		}
	}
	validate := exec.Command(bin, "validate", "--config", "../deploy/Caddyfile", "--adapter", "caddyfile")
	validate.Env = append(os.Environ(), "XDG_DATA_HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir())
	if out, err := validate.CombinedOutput(); err != nil {
		t.Fatalf("caddy validate deploy/Caddyfile: %v\n%s", err, out)
	}
}

// xcaddy.md's build from a local checkout is the line deploy/build.sh
// runs (which TestDeployDockerBuildSteps runs), at the Caddy version
// go.mod requires, and it lists every module `caddy list-modules` shows.
func TestXcaddyDocBuildsFromCheckout(t *testing.T) {
	doc, err := os.ReadFile("../xcaddy.md")
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile("../deploy/build.sh")
	if err != nil {
		t.Fatal(err)
	}
	const local = " --with github.com/sessionauth/caddy-sessionauth@v0.0.0=."
	want := "xcaddy build " + caddyVersion(t) + local
	if !slices.Contains(strings.Split(string(doc), "\n"), want) {
		t.Errorf("xcaddy.md has no line %q", want)
	}
	if !strings.Contains(string(script), `build "$caddy_version"`+local+" ") {
		t.Errorf("deploy/build.sh does not run %q", `xcaddy build "$caddy_version"`+local)
	}
	for _, m := range pluginModules {
		if !strings.Contains(string(doc), "\n# "+m+"\n") {
			t.Errorf("xcaddy.md's list-modules output does not show %s", m)
		}
	}
}
