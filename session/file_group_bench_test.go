package session_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

// BenchmarkFileSignIn measures sign-ins (Create, with fsync) into the
// file store from 1, 64 and 256 concurrent clients, each sign-in a new
// user's: what one instance can take when many people sign in at once.
func BenchmarkFileSignIn(b *testing.B) {
	for _, clients := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			clock := storetest.NewClock()
			f := openFile(b, clock.Now, session.FileOptions{})
			var next atomic.Int64
			var failed atomic.Value
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						if _, err := tryCreate(f, fmt.Sprint("u", i), "10.0.0.1", clock.Now(), session.Limit{Max: 5}); err != nil {
							failed.CompareAndSwap(nil, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			if err, ok := failed.Load().(error); ok {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "signins/s")
		})
	}
}
