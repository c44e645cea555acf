package session

import "strings"

// A session's user agent is most of its record (about 120 of 330 bytes),
// and user agents are mostly the same few phrases. The file writes one
// that is plain ASCII with each phrase of agentPhrases as one byte,
// 0x80 plus the phrase's index (about 45 bytes for a Safari or Chrome
// on a desktop): no byte of such an agent is 0x80 or above, so the
// short form reads back exactly. The list is part of the file's format:
// phrases are only ever added at its end, never changed or moved.
var agentPhrases = [...]string{
	"Mozilla/5.0 (",
	"Windows NT 10.0; Win64; x64",
	"Macintosh; Intel Mac OS X ",
	"X11; Linux x86_64",
	"Linux; Android ",
	"iPhone; CPU iPhone OS ",
	"iPad; CPU OS ",
	" like Mac OS X",
	") AppleWebKit/",
	" (KHTML, like Gecko) ",
	"537.36",
	"605.1.15",
	"Chrome/",
	" Safari/",
	"Version/",
	"Mobile/",
	" Mobile",
	"Firefox/",
	"Gecko/20100101 ",
	"; rv:",
	" Edg/",
	" OPR/",
	".0.0.0",
	"CriOS/",
	"FxiOS/",
	"SamsungBrowser/",
	"Windows NT ",
	"; Win64; x64",
	"; K)",
	"Linux",
	"Windows",
	"Android",
}

// agentByFirst lists, by their first byte, the phrases longest first.
var agentByFirst = func() (by [128][]uint8) {
	for i, p := range agentPhrases {
		by[p[0]] = append(by[p[0]], uint8(i))
	}
	for _, l := range by {
		for i := 1; i < len(l); i++ { // a few phrases per byte: insertion sort
			for j := i; j > 0 && len(agentPhrases[l[j]]) > len(agentPhrases[l[j-1]]); j-- {
				l[j], l[j-1] = l[j-1], l[j]
			}
		}
	}
	return by
}()

// shortAgent is ua with its phrases as bytes, or "" when ua is not plain
// ASCII or has no phrase.
func shortAgent(ua string) string {
	for i := 0; i < len(ua); i++ {
		if ua[i] >= 0x80 {
			return ""
		}
	}
	var b strings.Builder
	found := false
	for i := 0; i < len(ua); {
		match := -1
		for _, p := range agentByFirst[ua[i]] {
			if strings.HasPrefix(ua[i:], agentPhrases[p]) {
				match = int(p)
				break
			}
		}
		if match < 0 {
			b.WriteByte(ua[i])
			i++
			continue
		}
		if !found {
			b.Grow(len(ua) / 2)
			found = true
		}
		b.WriteByte(0x80 + byte(match))
		i += len(agentPhrases[match])
	}
	if !found {
		return ""
	}
	return b.String()
}

// longAgent spells out what shortAgent wrote; false when a byte names
// no phrase (a later version's list).
func longAgent(s string) (string, bool) {
	var b strings.Builder
	b.Grow(3 * len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x80 {
			b.WriteByte(c)
			continue
		}
		if int(c-0x80) >= len(agentPhrases) {
			return "", false
		}
		b.WriteString(agentPhrases[c-0x80])
	}
	return b.String(), true
}
