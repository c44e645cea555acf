package sessionauth

import (
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// testLogger is a handler's logger in tests: its lines go to t.Log, so
// that a failing test prints its own log and nothing of the others'. A
// line from a goroutine that outlives the test is dropped (t.Log then
// would panic). A fuzz target's handler keeps Caddy's logger: f.Log may
// not be called from inside the target.
func testLogger(t testing.TB) *zap.Logger {
	if _, fuzz := t.(*testing.F); fuzz {
		return nil
	}
	w := &testLogWriter{t: t}
	t.Cleanup(w.close) // registered first, so it runs after the handler's Cleanup
	enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), zap.DebugLevel))
}

type testLogWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testLogWriter) close() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}
