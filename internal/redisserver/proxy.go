package redisserver

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy sits between a client and a Redis on loopback and lets a test
// break the link the ways networks break: cut (connections hang, as on a
// partition), slow (every reply late), or drop (the connection closes
// right after a request, mid-reply).
type Proxy struct {
	Addr   string
	target string
	l      net.Listener

	mu     sync.Mutex
	mode   string // "", "cut", "drop"
	delay  time.Duration
	loseOn []byte // see LoseRepliesTo
	conns  map[net.Conn]struct{}
}

// NewProxy listens on a free loopback port and forwards to target.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: l.Addr().String(), target: target, l: l, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() { l.Close(); p.closeAll() })
	return p
}

// Cut makes the link hang: open connections are dropped and new ones are
// accepted but never answered, until Heal.
func (p *Proxy) Cut() { p.set("cut", 0); p.closeAll() }

// Drop closes each connection right after it forwards a request, so the
// reply never arrives, until Heal.
func (p *Proxy) Drop() { p.set("drop", 0); p.closeAll() }

// LoseRepliesTo forwards every request, but closes the connection right
// after one that contains pattern, so that Redis runs the command and its
// reply never arrives; other commands go through. Until Heal.
func (p *Proxy) LoseRepliesTo(pattern string) {
	p.mu.Lock()
	p.loseOn = []byte(pattern)
	p.mu.Unlock()
}

// Slow delays every reply by d, until Heal.
func (p *Proxy) Slow(d time.Duration) { p.set("", d) }

// Heal restores the link.
func (p *Proxy) Heal() { p.set("", 0) }

func (p *Proxy) set(mode string, d time.Duration) {
	p.mu.Lock()
	p.mode, p.delay, p.loseOn = mode, d, nil
	p.mu.Unlock()
}

// loses tells whether the reply to request b is to be lost.
func (p *Proxy) loses(b []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode == "drop" || (p.loseOn != nil && bytes.Contains(b, p.loseOn))
}

func (p *Proxy) state() (string, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode, p.delay
}

func (p *Proxy) track(c net.Conn, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *Proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

func (p *Proxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.track(c, true)
		go p.handle(c)
	}
}

func (p *Proxy) handle(client net.Conn) {
	defer func() { client.Close(); p.track(client, false) }()
	if mode, _ := p.state(); mode == "cut" {
		_, _ = io.Copy(io.Discard, client) // accept, never answer
		return
	}
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	p.track(server, true)
	defer func() { server.Close(); p.track(server, false) }()
	go func() { // client -> server
		buf := make([]byte, 32<<10)
		for {
			n, err := client.Read(buf)
			if n > 0 {
				if p.loses(buf[:n]) {
					client.Close() // first: no reply gets through
					_, _ = server.Write(buf[:n])
					return
				}
				if _, werr := server.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				server.Close()
				return
			}
		}
	}()
	buf := make([]byte, 32<<10) // server -> client
	for {
		n, err := server.Read(buf)
		if n > 0 {
			mode, delay := p.state()
			if mode != "" {
				return
			}
			if delay > 0 {
				time.Sleep(delay)
			}
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
