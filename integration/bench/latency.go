package main

import (
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	vegeta "github.com/tsenart/vegeta/v12/lib"
)

var (
	latencyTime   = flag.Duration("latency-d", 4*time.Second, "length of one open-loop run at a fixed rate")
	latencyRounds = flag.Int("latency-rounds", 2, "open-loop runs per configuration and rate, interleaved in random order; their histograms are merged")
)

// latencyFractions are the fixed rates, as fractions of plain
// reverse_proxy's peak requests/s in the same run.
var latencyFractions = []float64{0.25, 0.50, 0.75}

// openLoop sends GET /app to t at a constant rate for d, whatever the
// answers' pace (vegeta starts a worker when none is free), and records
// each request's latency from the moment the schedule meant to send it:
// a request that waited for the generator counts its wait, so queueing is
// not hidden (no coordinated omission).
func openLoop(t *target, rate int, d time.Duration, h *hdrhistogram.Histogram, failed map[uint16]int64) (sent, unsent int64) {
	hdr := http.Header{}
	if t.cookie != "" {
		hdr.Set("Cookie", t.cookie)
	}
	// At most 512 connections, all kept: a request that finds them busy
	// waits for one, and that wait counts in its latency (opening a new
	// connection per request would run this machine out of ports).
	// Its own client, whose connections are closed after the run: each
	// run's 512 would otherwise stay open on both sides.
	tr := &http.Transport{MaxIdleConnsPerHost: 512, MaxConnsPerHost: 512, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	atk := vegeta.NewAttacker(vegeta.Client(client))
	targeter := vegeta.NewStaticTargeter(vegeta.Target{Method: "GET", URL: t.addr + "/app", Header: hdr})
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for res := range atk.Attack(targeter, vegeta.Rate{Freq: rate, Per: time.Second}, d, t.name) {
		sent++
		if res.Code != http.StatusOK {
			failed[res.Code]++ // 0: no answer
			continue
		}
		// The sequence number orders requests by start: the seq-th was
		// due at start + seq × interval.
		lat := res.End().Sub(start.Add(time.Duration(res.Seq) * interval))
		_ = h.RecordValue(max(lat, res.Latency).Microseconds())
	}
	// A generator that falls behind its schedule stops at the end of d
	// with requests never sent: they are counted, not hidden.
	return sent, max(int64(rate)*int64(d/time.Second)-sent, 0)
}

// latencyAtRates prints p50, p99 and p99.9 of each target at 25%, 50% and
// 75% of plain reverse_proxy's peak.
func latencyAtRates(targets []*target, plainPeak float64) error {
	if plainPeak <= 0 {
		return fmt.Errorf("no peak requests/s for reverse_proxy: no fixed rates")
	}
	type key struct {
		name string
		frac float64
	}
	hists := map[key]*hdrhistogram.Histogram{}
	failed, unsent := map[key]map[uint16]int64{}, map[key]int64{}
	for r := 0; r < *latencyRounds; r++ {
		for _, frac := range latencyFractions {
			order := slices.Clone(targets)
			rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
			for _, t := range order {
				k := key{t.name, frac}
				if hists[k] == nil {
					hists[k] = hdrhistogram.New(1, 60_000_000, 3) // 1 µs to 60 s
				}
				if failed[k] == nil {
					failed[k] = map[uint16]int64{}
				}
				_, u := openLoop(t, int(frac*plainPeak), *latencyTime, hists[k], failed[k])
				unsent[k] += u
			}
		}
	}
	fmt.Printf("\nlatency at fixed rates (open loop, vegeta, constant arrival rate, %d runs of %s per rate and configuration, interleaved; HDR histograms merged; latency from each request's scheduled start):\n",
		*latencyRounds, *latencyTime)
	fmt.Printf("%-36s %6s %9s %10s %10s %10s %8s %8s\n", "configuration", "load", "rate/s", "p50", "p99", "p99.9", "failed", "unsent")
	for _, frac := range latencyFractions {
		for _, t := range targets {
			k := key{t.name, frac}
			h := hists[k]
			q := func(p float64) string {
				if h.TotalCount() == 0 {
					return "-"
				}
				return (time.Duration(h.ValueAtQuantile(p)) * time.Microsecond).Round(10 * time.Microsecond).String()
			}
			var nf int64
			for _, n := range failed[k] {
				nf += n
			}
			fmt.Printf("%-36s %5.0f%% %9d %10s %10s %10s %8d %8d\n", t.name, frac*100, int(frac*plainPeak), q(50), q(99), q(99.9), nf, unsent[k])
		}
	}
	fmt.Println("(failed: answers other than 200 and requests with no answer within 10 s; unsent: requests of the schedule the generator had not sent when the run ended; the Go load generator shares the two cores with what it measures)")
	for _, frac := range latencyFractions {
		for _, t := range targets {
			k := key{t.name, frac}
			codes := slices.Sorted(maps.Keys(failed[k]))
			if len(codes) == 0 {
				continue
			}
			fmt.Printf("  failed, %s at %.0f%%:", t.name, frac*100)
			for _, c := range codes {
				if c == 0 {
					fmt.Printf(" no answer %d", failed[k][c])
				} else {
					fmt.Printf(" %d × %d", failed[k][c], c)
				}
			}
			fmt.Println()
		}
	}
	return nil
}
