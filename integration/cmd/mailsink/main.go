// Command mailsink is the demo's mail server: it accepts every message on
// a local address and prints who it is for, its subject and its text part
// to the terminal, so that `make demo` shows the gateway's new-sign-in
// mail. It stores nothing and relays nothing. It lives in the integration
// module so that its SMTP server stays out of the plugin's go.mod.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:2525", "address to accept mail on (keep it on loopback)")
	flag.Parse()
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{}, nil }))
	s.Addr = *listen
	s.Domain = "mailsink.localhost"
	s.ReadTimeout, s.WriteTimeout = 30*time.Second, 30*time.Second
	s.MaxMessageBytes = 1 << 20
	log.SetFlags(0)
	log.Printf("mailsink: printing mail sent to %s", *listen)
	if err := s.ListenAndServe(); err != nil {
		log.Fatal(err)
	}
}

// out serialises printing: messages from parallel connections do not mix.
var out sync.Mutex

type session struct{ to []string }

func (s *session) Mail(string, *smtp.MailOptions) error { return nil }
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *session) Reset()        { s.to = nil }
func (s *session) Logout() error { return nil }

func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	subject, text, err := textPart(raw)
	out.Lock()
	defer out.Unlock()
	bar := strings.Repeat("─", 72)
	fmt.Printf("\n%s\n  mail to %s\n  subject %s\n%s\n", bar, strings.Join(s.to, ", "), subject, bar)
	if err != nil {
		fmt.Printf("(could not read the message: %v)\n%s\n", err, raw)
	} else {
		fmt.Print(text)
	}
	fmt.Println(bar)
	_ = os.Stdout.Sync()
	return nil
}

// textPart finds the subject and the text/plain part of a message.
func textPart(raw []byte) (subject, text string, err error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return "", "", err
	}
	subject, _ = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		return subject, "", err
	}
	if !strings.HasPrefix(mediaType, "multipart/") {
		b, err := io.ReadAll(msg.Body)
		return subject, string(b), err
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return subject, "", errors.New("no text/plain part")
			}
			return subject, "", err
		}
		if strings.HasPrefix(part.Header.Get("Content-Type"), "text/plain") {
			b, err := io.ReadAll(part)
			return subject, string(b), err
		}
	}
}
